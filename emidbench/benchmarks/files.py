"""A benchmark in one JSONL or Parquet file: one row per question; images as bytes or as
paths relative to the file's folder."""

from __future__ import annotations

from pathlib import Path

from emidbench.benchmarks.base import Benchmark
from emidbench.benchmarks.columns import label_choices, parse_columns, read_under, rows_to_samples
from emidbench.common.errors import UserError
from emidbench.common.io import iter_jsonl


def load_file(path: Path, columns: str | dict | None = None, name: str | None = None) -> Benchmark:
    path = Path(path)
    mapping = parse_columns(columns)
    class_names: dict = {}
    if path.suffix == ".jsonl":
        rows = [rec for _, rec in iter_jsonl(path)]
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as e:
            raise UserError(f"{path}: not a readable Parquet file ({type(e).__name__})") from None
        rows = table.to_pylist()
        class_names = _parquet_class_names(table.schema, (mapping["label"], mapping["domain"]))
    else:
        raise UserError(f"{path}: expected a .jsonl or .parquet file")
    choice_list = None if mapping["label"] in class_names else label_choices(r.get(mapping["label"]) for r in rows)
    samples = rows_to_samples(rows, mapping, lambda rel: read_under(path.parent, rel, str(path)), str(path),
                              class_names=class_names, choice_list=choice_list)
    return Benchmark(name=name or path.stem.replace("-", "_"), samples=samples, source=str(path)).validate()


def _parquet_class_names(schema, columns) -> dict:
    """{column: class names} of the ClassLabel columns a `datasets`-written Parquet file
    records in its schema metadata (the "huggingface" key)."""
    import json

    raw = (schema.metadata or {}).get(b"huggingface")
    try:
        features = json.loads(raw)["info"]["features"] if raw else {}
    except (ValueError, KeyError, TypeError):
        return {}
    out = {}
    for col in columns:
        f = features.get(col)
        f = f.get("feature", f) if isinstance(f, dict) and f.get("_type") in ("List", "Sequence") else f
        if isinstance(f, dict) and f.get("_type") == "ClassLabel" and isinstance(f.get("names"), list):
            out[col] = [str(n) for n in f["names"]]
    return out
