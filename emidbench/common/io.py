"""Files that are never torn: whole files written atomically (a temp file in the same
folder, fsync, os.replace), so a killed process leaves the old file or the new one;
append-only JSONL whose torn last line (no trailing newline) is dropped on read and cut
off before the next append; canonical JSON (sorted keys, UTF-8: equal content, equal
bytes); CSV with exact numbers (floats as their shortest round-trip repr, missing values
as empty cells, never a placeholder)."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from emidbench.common.errors import UserError

_UMASK = os.umask(0)
os.umask(_UMASK)  # read once: mkstemp makes 0600 files, results should get the usual 0666 & ~umask


# --------------------------------------------------------------------------- writes

def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def dumps_json(obj: Any) -> str:
    """Canonical JSON: sorted keys, UTF-8, so equal content gives equal bytes."""
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, indent=2) + "\n"


def jsonl_line(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, dumps_json(obj))


def atomic_write_jsonl(path: Path, records: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(jsonl_line(r) for r in records))


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write `data` atomically unless the file already holds exactly these bytes (mtime
    kept: a rerun that changes nothing touches nothing); True if written."""
    path = Path(path)
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    atomic_write_bytes(path, data)
    return True


# --------------------------------------------------------------------------- reads

def read_json(path: Path) -> Any:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read ({e})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}: malformed JSON ({e.msg})") from None


def iter_jsonl(path: Path, allow_torn_tail: bool = False) -> Iterator[tuple[int, dict]]:
    """Yield (line number, record). Blank lines are skipped.

    allow_torn_tail: for append-only files, a last line without its newline is a write
    that was cut off; it is dropped instead of reported.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e})") from None
    lines = data.split(b"\n")
    torn = lines[-1] != b""
    for i, raw in enumerate(lines, start=1):
        if i == len(lines) and (not torn or allow_torn_tail):
            return
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw.decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"{path}:{i}: malformed JSON line ({e})") from None
        if not isinstance(rec, dict):
            raise UserError(f"{path}:{i}: expected a JSON object per line")
        yield i, rec


def read_jsonl(path: Path, allow_torn_tail: bool = False) -> list[dict]:
    return [rec for _, rec in iter_jsonl(path, allow_torn_tail)]


class JsonlAppender:
    """Append-only JSONL, one flushed+fsynced write per batch.

    On open, a torn tail left by a killed writer is cut off, so the next append starts
    on a fresh line and no reader ever sees a half record.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            data = self.path.read_bytes()
            if data and not data.endswith(b"\n"):
                keep = data.rfind(b"\n") + 1
                with open(self.path, "r+b") as f:
                    f.truncate(keep)
        self._f = open(self.path, "ab")

    def write(self, records: Iterable[dict]) -> None:
        payload = "".join(jsonl_line(r) for r in records).encode("utf-8")
        if payload:
            self._f.write(payload)
            self._f.flush()
            os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "JsonlAppender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()



# --------------------------------------------------------------------------- csv

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
    """Atomically, and only when the bytes change: rewriting the same table leaves the file
    as it was (mtime included), so a resumed run that changes nothing touches nothing."""
    write_if_changed(Path(path), csv_text(rows, columns).encode("utf-8"))
