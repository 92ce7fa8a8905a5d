"""A benchmark in one JSONL or Parquet file: one row per question; images as bytes or as
paths relative to the file's folder."""

from __future__ import annotations

from pathlib import Path

from emidbench.benchmarks.base import Benchmark
from emidbench.benchmarks.columns import parse_columns, read_under, rows_to_samples
from emidbench.common.errors import UserError
from emidbench.common.io import iter_jsonl


def load_file(path: Path, columns: str | dict | None = None, name: str | None = None) -> Benchmark:
    path = Path(path)
    mapping = parse_columns(columns)
    if path.suffix == ".jsonl":
        rows = [rec for _, rec in iter_jsonl(path)]
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as e:
            raise UserError(f"{path}: not a readable Parquet file ({type(e).__name__})") from None
    else:
        raise UserError(f"{path}: expected a .jsonl or .parquet file")
    samples = rows_to_samples(rows, mapping, lambda rel: read_under(path.parent, rel, str(path)), str(path))
    return Benchmark(name=name or path.stem.replace("-", "_"), samples=samples, source=str(path)).validate()
