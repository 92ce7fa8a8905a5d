"""The run directory: the only interface between stages.

    RUN/shifts/manifest.json          suite, benchmark, seed, one entry per scenario
    RUN/shifts/<scenario>.jsonl       LLaVA question format + reference (+ context)
    RUN/shifts/images/<sha256>.<ext>  every distinct image once, named by content hash
    RUN/responses/<model>/<scenario>.jsonl   LLaVA answer format
    RUN/scores/<model>/...            written by `score`
    RUN/report/<model>/...            written by `report`
    RUN/cache/...                     content-addressed caches (embeddings, answers, judge)

RunDir owns every path in it; the typed artefacts live beside it: `manifest` (the shift
stage's record), `answers` (answer records). How files are written so that none is ever
torn is `emidbench.common.io`.
"""

from __future__ import annotations

import re
from pathlib import Path

from emidbench.common.errors import UserError
from emidbench.common.hashing import content_hash
from emidbench.common.io import (
    atomic_write_json,
    atomic_write_jsonl,
    iter_jsonl,
    read_json,
    read_jsonl,
    write_if_changed,
)
from emidbench.rundir.manifest import Manifest

# The artefacts' file names, spelled once.
EVAL_RECORD = "eval.json"
SCORE_RECORD = "score.json"
METRICS = "metrics.csv"
PIPELINE_RECORD = "pipeline.json"

# --------------------------------------------------------------------------- names

_SLUG_BAD = re.compile(r"[^A-Za-z0-9._+-]+")


def model_slug(model: str, name: str | None = None) -> str:
    """Filesystem-safe model name: --name if given, else the last component of the
    hub id or path (`llava-hf/llava-1.5-7b-hf` -> `llava-1.5-7b-hf`)."""
    raw = name if name else str(model).rstrip("/\\").replace("\\", "/").split("/")[-1]
    raw = raw.split(":")[-1] if not name and ":" in raw else raw
    slug = _SLUG_BAD.sub("_", raw).strip("._")
    if not slug:
        raise UserError(f"cannot derive a model name from {model!r}; pass --name")
    return slug


# --------------------------------------------------------------------------- the run

class RunDir:
    """Paths and typed access to one run directory."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    # paths
    @property
    def shifts(self) -> Path:
        return self.root / "shifts"

    @property
    def images(self) -> Path:
        return self.shifts / "images"

    @property
    def manifest_path(self) -> Path:
        return self.shifts / "manifest.json"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    def scenario_path(self, scenario: str) -> Path:
        return self.shifts / f"{scenario}.jsonl"

    def responses_dir(self, model: str) -> Path:
        return self.root / "responses" / model

    def responses_path(self, model: str, scenario: str) -> Path:
        return self.responses_dir(model) / f"{scenario}.jsonl"

    def eval_record_path(self, model: str) -> Path:
        return self.responses_dir(model) / EVAL_RECORD

    def scores_dir(self, model: str) -> Path:
        return self.root / "scores" / model

    def metrics_path(self, model: str) -> Path:
        return self.scores_dir(model) / METRICS

    def score_record_path(self, model: str) -> Path:
        return self.scores_dir(model) / SCORE_RECORD

    def scored_models(self) -> list[str]:
        """Models with a metrics table."""
        d = self.root / "scores"
        return sorted(p.name for p in d.iterdir() if (p / METRICS).is_file()) if d.is_dir() else []

    @property
    def pipeline_path(self) -> Path:
        return self.root / PIPELINE_RECORD

    def report_dir(self, model: str) -> Path:
        return self.root / "report" / model

    def models(self) -> list[str]:
        """Models with at least one answer file (an eval that failed to start leaves only
        its eval.json)."""
        d = self.root / "responses"
        return sorted(p.name for p in d.iterdir() if p.is_dir() and any(p.glob("*.jsonl"))) if d.is_dir() else []

    # manifest
    def has_shifts(self) -> bool:
        return self.manifest_path.is_file()

    def shifts_complete(self) -> bool:
        """The manifest, every scenario file it lists and every image those name exist (a
        stat each: cheap enough for every resume; `emidbench shift` also checks contents)."""
        try:
            paths = [self.scenario_path(s.name) for s in self.read_manifest().scenarios]
            return all(p.is_file() and all((self.images / str(r.get("image"))).is_file() for _, r in iter_jsonl(p))
                       for p in paths)
        except UserError:  # no manifest, or a damaged file: not complete
            return False

    def read_manifest(self) -> Manifest:
        if not self.has_shifts():
            raise UserError(f"{self.root}: no shifted data yet ({self.manifest_path} missing); run `emidbench shift` first")
        return Manifest.from_json(read_json(self.manifest_path), str(self.manifest_path))

    def write_manifest(self, manifest: Manifest) -> None:
        atomic_write_json(self.manifest_path, manifest.to_json())

    # scenario files
    def read_scenario(self, scenario: str) -> list[dict]:
        path = self.scenario_path(scenario)
        records = read_jsonl(path)
        seen: set = set()
        for i, r in enumerate(records, start=1):
            for key in ("question_id", "image", "text"):
                if key not in r:
                    raise UserError(f"{path}: record {i} has no {key!r}")
            if r["question_id"] in seen:
                raise UserError(f"{path}: duplicate question_id {r['question_id']!r}")
            seen.add(r["question_id"])
        return records

    def write_scenario(self, scenario: str, records: list[dict]) -> None:
        atomic_write_jsonl(self.scenario_path(scenario), records)

    # images
    def put_image(self, data: bytes, ext: str) -> str:
        """Store encoded image bytes once under their content hash; return the name
        relative to RUN/shifts/images/."""
        name = f"{content_hash(data)}.{ext.lstrip('.').lower()}"
        write_if_changed(self.images / name, data)  # a damaged copy is repaired, an intact one left alone
        return name

    def image_intact(self, name: str) -> bool:
        """The stored image exists and its bytes still hash to its name."""
        path = self.images / name
        return path.is_file() and content_hash(path.read_bytes()) == name.split(".")[0]

    def image_path(self, name: str) -> Path:
        path = (self.images / name).resolve()
        if self.images.resolve() not in path.parents:
            raise UserError(f"image path {name!r} escapes {self.images}")
        return path
