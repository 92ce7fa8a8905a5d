"""A benchmark in one JSONL or Parquet file: one row per question; images as bytes or as
paths relative to the file's folder."""

from __future__ import annotations

from pathlib import Path

from emidbench.benchmarks.base import Benchmark
from emidbench.benchmarks.columns import ImageFolder, label_choices, lazy_images, parse_columns, rows_to_samples
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
        class_names = _parquet_class_names(table.schema, (mapping["label"], mapping["domain"]))
        rows = list(_parquet_rows(table, mapping["image"]))
    else:
        raise UserError(f"{path}: expected a .jsonl or .parquet file")
    choice_list = None if mapping["label"] in class_names else label_choices(r.get(mapping["label"]) for r in rows)
    samples = rows_to_samples(rows, mapping, ImageFolder(path.parent).ref, str(path),
                              class_names=class_names, choice_list=choice_list)
    return Benchmark(name=name or path.stem.replace("-", "_"), samples=samples, source=str(path)).validate()


def _parquet_rows(table, image_column: str):
    """The table's rows, 64 at a time; embedded images become refs into the table (Arrow
    holds the file's contents once; no Python copy of every image is kept)."""
    rows = (row for batch in table.to_batches(max_chunksize=64) for row in batch.to_pylist())
    if image_column not in table.column_names:
        return rows
    images = table.column(image_column)
    return lazy_images(rows, image_column, lambda i: images[i].as_py())


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
