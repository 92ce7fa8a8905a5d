"""Pre-shifted scenario sets: a `datasets.DatasetDict` with one split per scenario of one
benchmark — the paper's released sets (`changdae/llavabench-shift-synthetic-v1`, 35
splits; `changdae/llavabench-shift-natural-v1`, 28 splits; columns question_id, image,
question, reference_answer) or a user's own. Read verbatim: questions, images and
references as the dataset has them; nothing is regenerated."""

from __future__ import annotations

from dataclasses import dataclass, field

from emidbench.benchmarks.base import Sample
from emidbench.benchmarks.columns import parse_columns, rows_to_samples
from emidbench.benchmarks.hf_dataset import (
    KNOWN,
    RELEASED_ID,
    dataset_rows,
    load_dataset_dict,
    parse_columns_dict,
    path_images,
)
from emidbench.common.errors import UserError

# A user's own sets without a known id: the released sets' column names, then ours.
RELEASED_COLUMNS = {"text": "question", "reference": "reference_answer"}


@dataclass
class ScenarioSets:
    """Every split of a scenario DatasetDict, in the dataset's order."""

    name: str  # the dataset, for messages and the manifest
    splits: dict[str, list[Sample]]
    source: str
    id_split: str | None = None  # known for the released sets
    columns: dict = field(default_factory=dict)


def load_scenario_sets(spec: str, *, known_as: str | None = None, columns: str | dict | None = None,
                       subset: str | None = None, limit: int | None = None) -> ScenarioSets:
    """`spec`: a hub id, a `save_to_disk` folder or a folder in hub layout. `known_as`: the
    hub id a local copy is a copy of (its column mapping and ID split apply)."""
    import datasets

    ident = known_as or spec
    base_cols = (KNOWN.get(ident) or (None, RELEASED_COLUMNS))[1]
    where = f"{spec}" + (f" [{subset}]" if subset else "")
    dd = load_dataset_dict(spec, subset)
    mapping = parse_columns({**base_cols, **parse_columns_dict(columns)})
    resolve = path_images(spec)

    splits: dict[str, list[Sample]] = {}
    for split in dd:
        ds = dd[split]
        if limit is not None:
            ds = ds.select(range(min(limit, len(ds))))
        if mapping["image"] in ds.column_names and isinstance(ds.features[mapping["image"]], datasets.Image):
            ds = ds.cast_column(mapping["image"], datasets.Image(decode=False))
        at = f"{where} split {split}"
        samples = rows_to_samples(dataset_rows(ds, mapping["image"]), mapping, resolve, at)
        if not samples:
            raise UserError(f"{at}: no rows")
        first: dict = {}
        for i, s in enumerate(samples, start=1):
            if s.question_id in first:
                raise UserError(f"{at}: duplicate question_id {s.question_id!r} (rows {first[s.question_id]} and {i}); "
                                "every split must hold each question once")
            first[s.question_id] = i
        splits[split] = samples
    if not splits:
        raise UserError(f"{where}: the dataset has no splits")
    return ScenarioSets(name=_dataset_name(ident), splits=splits, source=where, id_split=RELEASED_ID.get(ident),
                        columns=mapping)


def _dataset_name(ident: str) -> str:
    return str(ident).rstrip("/").replace("\\", "/").split("/")[-1]
