"""CSV tables with exact, deterministic numbers: floats as repr (shortest round-trip),
missing values as empty cells — never a placeholder."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from emidbench.rundir import atomic_write_text


def cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, (float, np.floating)):
        return "" if math.isnan(v) else repr(float(v))
    return str(v)


def csv_text(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([cell(r.get(c)) for c in columns])
    return buf.getvalue()


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    atomic_write_text(Path(path), csv_text(rows, columns))
