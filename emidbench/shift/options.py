"""The shift stage's options, as one typed dataclass: `emidbench shift`'s flags, a run
config's `shift:` section (pipeline.SHIFT_KEYS: its field names but the seed and the
limit, which are the run's), and `run_shift`'s keywords. `check()` is the one validation,
run by the CLI, by `emidbench run` before any stage starts (naming the config key), and by
run_shift. Loads nothing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emidbench.common.options import StageOptions, is_int, positive_int


@dataclass
class ShiftOptions(StageOptions):
    STAGE = "shift"

    seed: int = 0  # every random perturbation's seed (the ID data stay the same)
    workers: int = 1  # processes computing image corruptions (results do not depend on it)
    limit: int | None = None  # the first N samples of each domain (smoke runs)
    dry_run: bool = False  # print the scenario table and stop
    translator: str | None = None  # a seq2seq checkpoint for languages the benchmark has no translations for
    # what ranks a second domain's images for its easy/hard split: pixel (None), paper, offline,
    # or an Embedder object (library use)
    split_embedder: Any = None
    split_options: dict | None = None  # the split embedder's: vision_encoder, device (split.SPLIT_OPTIONS)
    split_index: str | Path | None = None  # the paper's released easy/hard split instead of computing one
    # MM_Robustness's filter on synonym replacement: a sentence encoder (hub id or folder) or a
    # text.similarity.SimilarityFilter (library use); None: no filter
    similarity_filter: Any = None
    # a domain suite's settings, over the suite's `domains:` section (shift/domains.py)
    id_domain: str | None = None  # the ID set's domain (default: the suite's, else the benchmark's first)
    per_class: int | None = None  # at most N samples per class and domain (0: all)
    icl: Any = None  # in-context-example scenarios: K, "2,4,8" or a list of K
    icl_source: Any = None  # where the examples come from: id, target, "id,target" or a list

    def check(self) -> None:
        from emidbench.shift.split import check_split_embedder, check_split_options

        self.check_each((
            ("seed", is_int, "an integer"),
            ("workers", positive_int, "a positive integer"),
            ("limit", lambda v: v is None or positive_int(v), "a positive integer"),
            ("dry_run", lambda v: isinstance(v, bool), "true or false"),
        ))
        if self.split_embedder is None or isinstance(self.split_embedder, str):
            check_split_embedder(self.split_embedder)
        check_split_options(self.split_options)
