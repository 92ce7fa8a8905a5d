"""Benchmarks through Hugging Face `datasets`: a hub id or a local copy in the same format
(a `save_to_disk` folder, or a folder of data files as a hub repo has them)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from emidbench.benchmarks.base import Benchmark, Sample
from emidbench.benchmarks.choice_sets import CHOICE_SETS, ChoiceSet
from emidbench.benchmarks.columns import ImageFolder, label_choices, lazy_images, parse_columns, rows_to_samples
from emidbench.common import hub
from emidbench.common.errors import UserError, did_you_mean, first_line

# Known datasets: our name for the set, and the columns that differ from the defaults.
KNOWN = {
    "lmms-lab/llava-bench-coco": (
        "llava_bench_coco", {"text": "question", "reference": "answer", "context": "caption"}),
    "lmms-lab/llava-bench-in-the-wild": (
        "llava_bench_in_the_wild", {"text": "question", "reference": "gpt_answer", "context": "caption"}),
    # The paper's released shifted sets: one subset per scenario, no category/caption
    # (join them from the source benchmark by question_id).
    "changdae/llavabench-shift-synthetic-v1": (None, {"text": "question", "reference": "reference_answer"}),
    "changdae/llavabench-shift-natural-v1": (None, {"text": "question", "reference": "reference_answer"}),
}
# The released sets' ID split: `emidbench shift --suite released` measures against it.
RELEASED_ID = {
    "changdae/llavabench-shift-synthetic-v1": "llava_bench_coco",
    "changdae/llavabench-shift-natural-v1": "llava_bench_coco_English",
}


def load_hf_dataset(
    spec: str,
    split: str | None = None,
    subset: str | None = None,
    columns: str | dict | None = None,
    name: str | None = None,
    known_as: str | None = None,
    join: Benchmark | None = None,
) -> Benchmark:
    """spec: a hub id or a local path. known_as: a hub id whose built-in column mapping
    applies to a local copy (e.g. a saved copy of lmms-lab/llava-bench-coco)."""
    import datasets

    choice_set: ChoiceSet | None = CHOICE_SETS.get(known_as or spec)
    default_name, known_cols = (KNOWN.get(known_as or spec) or (choice_set and (choice_set.name, choice_set.columns))
                                or _known_by_name(name) or (None, {}))
    mapping = parse_columns({**known_cols, **(parse_columns_dict(columns))})
    where = f"{spec}" + (f" [{subset}]" if subset else "")

    ds = _load(spec, subset, where)
    if isinstance(ds, datasets.DatasetDict):
        ds = ds[_pick_split(list(ds.keys()), split or (choice_set and choice_set.split), where)]

    if mapping["image"] in ds.column_names and isinstance(ds.features[mapping["image"]], datasets.Image):
        ds = ds.cast_column(mapping["image"], datasets.Image(decode=False))
    resolve = path_images(spec)
    class_names = {col: names for col in (mapping["label"], mapping["domain"])
                   if (names := class_label_names(ds.features.get(col))) is not None}
    choice_list = list(choice_set.choices) if choice_set and choice_set.choices else None
    label_feature = ds.features.get(mapping["label"])
    if choice_list is None and isinstance(label_feature, datasets.Value) and label_feature.dtype in ("string",
                                                                                                    "large_string"):
        choice_list = label_choices(ds.unique(mapping["label"]))  # names without a ClassLabel: sorted
    rows = dataset_rows(ds, mapping["image"], keep=(mapping["choices"], mapping["label"]))
    skipped: list[int] = []
    samples = rows_to_samples(rows, mapping, resolve, where, class_names=class_names, choice_list=choice_list,
                              skip_multi_label=bool(choice_set and choice_set.skip_multi_label), skipped=skipped)
    if join is not None:
        samples = join_metadata(samples, join)
    bench_name = name or subset or default_name or Path(str(spec)).name.replace("-", "_")
    notes = [f"{len(skipped)} rows with several labels left out (a choice task needs one; first: row {skipped[0]})"
             ] if skipped else []
    return Benchmark(name=bench_name, samples=samples, source=where, notes=notes).validate()


def dataset_rows(ds, image_column: str, keep: tuple = ()):
    """The rows of `ds` as dicts (text lists joined, `_flatten`), each embedded image a ref
    that reads its row again when needed: `datasets` keeps the table memory-mapped on disk,
    so the benchmark holds no image bytes."""
    rows = (_flatten(r, keep=keep) for r in ds)
    if image_column not in ds.column_names:
        return rows
    return lazy_images(rows, image_column, lambda i: ds[i][image_column])


def path_images(spec: str):
    """How a row's image path is read: under the dataset's folder for a local copy (as
    refs); a hub dataset has no folder to read it from."""
    folder = ImageFolder(Path(spec)) if Path(spec).exists() else None

    def resolve(rel: str, where: str):
        if folder is None:
            raise UserError(f"{where}: image given as a path ({rel}) in a hub dataset")
        return folder.ref(rel, where)

    return resolve


def class_label_names(feature) -> list[str] | None:
    """A ClassLabel column's names (also a list of ClassLabels: a multi-label column)."""
    import datasets

    for f in (feature, getattr(feature, "feature", None)):
        if isinstance(f, datasets.ClassLabel):
            return list(f.names)
    return None


def load_dataset_dict(spec: str, subset: str | None = None):
    """Every split of `spec` (a hub id, a `save_to_disk` folder or a folder in hub layout)
    as a `datasets.DatasetDict`; one line for each way it is not there."""
    import datasets

    where = f"{spec}" + (f" [{subset}]" if subset else "")
    dd = _load(spec, subset, where)
    if isinstance(dd, datasets.Dataset):  # a single saved Dataset: one split
        dd = datasets.DatasetDict({Path(spec).name: dd})
    return dd


def _load(spec: str, subset: str | None, where: str):
    """load_from_disk / load_dataset with the hub decision and one line per failure."""
    import datasets

    local = Path(spec).exists()
    known = _known_names()
    # A hub id: reachable -> as usual; out of reach -> the cached copy or one line at once.
    cache_only = None if local else hub.prepare(spec, repo_type="dataset", known=known)
    try:
        if local and _is_saved_to_disk(Path(spec)):
            return datasets.load_from_disk(spec)
        return _load_cached(spec, subset) if cache_only else datasets.load_dataset(spec, subset)
    except UserError:
        raise
    except Exception as e:  # datasets raises many types for "not there"
        if local:
            raise UserError(f"{where}: cannot load as a dataset ({type(e).__name__}: {first_line(e, 200)})") from None
        if cache_only:
            raise hub.not_reachable(spec, repo_type="dataset", known=known, why=cache_only) from None
        if isinstance(e, datasets.exceptions.DatasetNotFoundError):
            raise UserError(f"{spec} is neither a local path nor a dataset on the Hugging Face hub"
                            f"{did_you_mean(spec, known)} ({first_line(e, 200)})") from None
        raise hub.not_reachable(spec, repo_type="dataset", known=known) from None


def _known_names() -> set:
    """What a mistyped dataset id is matched against: the registered benchmark names and the
    hub ids with a built-in column mapping."""
    from emidbench.benchmarks import BENCHMARKS

    return set(BENCHMARKS) | set(KNOWN) | set(CHOICE_SETS)


def _load_cached(spec: str, subset: str | None):
    """`spec` from the local caches without the network: `datasets`' own cache (a set loaded
    once before), else the snapshot in the hub cache (`hf download --repo-type dataset`)."""
    import datasets

    try:
        with hub.offline(datasets_too=True):
            return datasets.load_dataset(spec, subset)
    except Exception:
        snapshot = hub.cached_snapshot(spec, "dataset")
        if snapshot is None:
            raise
    with hub.offline(datasets_too=True):
        return datasets.load_dataset(str(snapshot), subset)


def _known_by_name(name: str | None):
    """A local copy named like a known set (`--domain llava_bench_in_the_wild=DIR`) gets
    that set's column mapping."""
    return next((v for v in KNOWN.values() if name and v[0] == name), None)


def join_metadata(samples: list[Sample], source: Benchmark) -> list[Sample]:
    """Fill category and context from the source benchmark by question_id (the released
    shifted sets carry neither; the judge needs both)."""
    by_id = {s.question_id: s for s in source.samples}
    out = []
    for s in samples:
        src = by_id.get(s.question_id)
        if src is None:
            raise UserError(f"question_id {s.question_id!r} is not in {source.name}; cannot join category/context")
        out.append(replace(s, category=s.category or src.category, context=s.context or src.context))
    return out


def parse_columns_dict(columns: str | dict | None) -> dict:
    if not columns:
        return {}
    full = parse_columns(columns)
    return {k: v for k, v in full.items() if v != parse_columns(None)[k]}


def _is_saved_to_disk(path: Path) -> bool:
    return path.is_dir() and (
        (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()
    )


def _pick_split(splits: list[str], split: str | None, where: str) -> str:
    if split:
        if split not in splits:
            raise UserError(f"{where}: no split {split!r} (have: {', '.join(splits)})")
        return split
    for s in ("train", "test", "validation"):
        if s in splits:
            return s
    return splits[0]


def _flatten(row: dict, keep: tuple = ()) -> dict:
    # lmms-lab's caption may be a list of captions; the judge wants one text. Lists that
    # are data (a row's options, a multi-label column) stay lists.
    return {k: ("\n".join(map(str, v)) if isinstance(v, list) and k != "image" and k not in keep else v)
            for k, v in row.items()}

