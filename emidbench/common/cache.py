"""EntryCache: a content-addressed JSON store, one object per key at
ROOT/<key[:2]>/<key>.json, each written atomically, so a killed process leaves whole
entries only. An entry that is absent, unreadable, not JSON (torn, truncated, not UTF-8),
not an object, or that its owner's check rejects is a MISS, never an error: the caller
computes it again and put() overwrites it. The eval stage's response cache and the score
stage's judge cache stand on it."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from emidbench.common.errors import UserError
from emidbench.common.io import atomic_write_json, read_json


class EntryCache:
    """ROOT/<key[:2]>/<key>.json, one JSON object per key. `valid(entry)` is the owner's
    check of an entry's content; an entry failing it (or damaged, or absent) is a miss."""

    def __init__(self, root: Path, valid: Callable[[dict], bool] | None = None):
        self.root = Path(root)
        self.valid = valid

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        try:
            entry = read_json(self._path(key))
        except UserError:  # absent, unreadable or damaged: a miss, not a failure
            return None
        if not isinstance(entry, dict) or (self.valid is not None and not self.valid(entry)):
            return None
        return entry

    def put(self, key: str, entry: dict) -> None:
        atomic_write_json(self._path(key), entry)

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("*/*.json")) if self.root.is_dir() else 0
