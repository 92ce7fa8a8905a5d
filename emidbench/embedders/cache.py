"""Embeddings cached by content, so each distinct image and text is embedded once across
all scenarios and all models of a run.

    RUN/cache/embeddings/<sha256(embedder identity)[:16]>/
        embedder.json   the identity and width (for people; checked on open)
        vectors.f32     float32 rows, appended
        index.jsonl     {"k": key, "r": row} per row, appended AFTER the row is on disk
        lock            serialises writers (two `score` processes may share a run)

Keys: sha256 of b"img:" + image bytes, or of "txt:" + the text in UTF-8. A changed
embedder (other weights, tokenizer, preprocessing, pooling) has another identity, so
another folder: a stale vector is never served.

Crash safety: a writer writes and fsyncs the vectors first, then appends and fsyncs the
index lines. A process killed in between leaves rows no index line points to; they are
overwritten by the next writer. A torn last index line is dropped on read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

from emidbench.common.errors import UserError
from emidbench.common.io import JsonlAppender, atomic_write_json, iter_jsonl

CHUNK = 256  # items embedded (and made durable) per embedder call


def image_key(data: bytes) -> str:
    return hashlib.sha256(b"img:" + data).hexdigest()


def text_key(text: str) -> str:
    return hashlib.sha256(("txt:" + text).encode("utf-8")).hexdigest()


class EmbeddingCache:
    def __init__(self, root: Path, embedder, progress: Callable[[str, int, int], None] | None = None):
        self.embedder = embedder
        self.dim = int(embedder.dim)
        self.dir = Path(root) / hashlib.sha256(embedder.identity.encode("utf-8")).hexdigest()[:16]
        self.dir.mkdir(parents=True, exist_ok=True)
        self.vec_path = self.dir / "vectors.f32"
        self.idx_path = self.dir / "index.jsonl"
        self.progress = progress
        meta = self.dir / "embedder.json"
        if meta.is_file():
            with contextlib.suppress(ValueError, OSError):
                have = json.loads(meta.read_text(encoding="utf-8"))
                if have.get("dim") != self.dim or have.get("identity") != embedder.identity:
                    raise UserError(f"{self.dir}: embedding cache of another embedder ({have.get('identity')}); "
                                    "delete that folder")
        else:
            atomic_write_json(meta, {"identity": embedder.identity, "dim": self.dim,
                                     "name": embedder.name})
        self.rows: dict[str, int] = {}
        self._matrix = np.zeros((0, self.dim), np.float32)
        self._buffer = self._matrix
        self.computed = 0  # items this process embedded (the rest came from the cache)
        self._refresh()

    # ------------------------------------------------------------------ reads
    def images(self, images: list[bytes]) -> np.ndarray:
        """(n, dim) vectors of these encoded images, embedding only the unseen ones."""
        return self._get([image_key(b) for b in images], images, self.embedder.embed_images, "images")

    def texts(self, texts: list[str]) -> np.ndarray:
        return self._get([text_key(t) for t in texts], texts, self.embedder.embed_texts, "texts")

    def missing_images(self, images: list[bytes]) -> int:
        return len({image_key(b) for b in images} - self.rows.keys())

    def missing_texts(self, texts: list[str]) -> int:
        return len({text_key(t) for t in texts} - self.rows.keys())

    def missing(self, keys: list[str]) -> int:
        """How many distinct keys are not cached yet."""
        return len(set(keys) - self.rows.keys())

    def _get(self, keys: list[str], items: list, embed, what: str) -> np.ndarray:
        self.embed_missing(keys, items.__getitem__, embed, what)
        if not keys:
            return np.zeros((0, self.dim), np.float32)
        return self._matrix[self.rows_of(keys)]

    def embed_missing(self, keys: list[str], load: Callable[[int], object], embed, what: str,
                      advance: Callable[[int], None] | None = None) -> int:
        """Embed the items whose key is not cached yet, CHUNK at a time; `load(i)` gives
        item i (keys[i]'s content) only when it is embedded, so a caller need not hold
        every image in memory; `advance(n)` after each chunk (a progress bar). Returns
        how many were embedded."""
        todo: dict[str, int] = {}
        for i, k in enumerate(keys):
            if k not in self.rows and k not in todo:
                todo[k] = i
        pending = list(todo.items())
        for start in range(0, len(pending), CHUNK):
            chunk = pending[start:start + CHUNK]
            vectors = np.asarray(embed([load(i) for _, i in chunk]))
            self._check(vectors, len(chunk), what)
            self._append([k for k, _ in chunk], vectors.astype(np.float32))
            self.computed += len(chunk)
            if advance:
                advance(len(chunk))
            if self.progress:
                self.progress(what, min(start + CHUNK, len(pending)), len(pending))
        return len(pending)

    def rows_of(self, keys: list[str]) -> np.ndarray:
        """The row of each key in `matrix` (all must be cached)."""
        return np.fromiter((self.rows[k] for k in keys), dtype=np.int64, count=len(keys))

    @property
    def matrix(self) -> np.ndarray:
        """Every cached vector, one row per distinct input (read-only: rows are shared by
        every scenario that uses the input)."""
        return self._matrix

    def _check(self, vectors: np.ndarray, n: int, what: str) -> None:
        name = self.embedder.name
        if vectors.shape != (n, self.dim):
            raise UserError(f"embedder {name} returned {what} vectors of shape {vectors.shape}, expected ({n}, "
                            f"{self.dim})")
        bad = ~np.isfinite(vectors).all(axis=1)
        if bad.any():
            raise UserError(f"embedder {name} returned NaN or inf for {int(bad.sum())} {what} "
                            "(a broken checkpoint?); nothing was cached")

    # ------------------------------------------------------------------ writes
    def _refresh(self) -> None:
        """Pick up what this or another process has appended."""
        rows: dict[str, int] = {}
        if self.idx_path.exists():
            for line, rec in iter_jsonl(self.idx_path, allow_torn_tail=True):
                try:
                    rows[str(rec["k"])] = int(rec["r"])
                except (KeyError, TypeError, ValueError):
                    raise UserError(f"{self.idx_path}:{line}: embedding cache is damaged; delete "
                                    f"{self.dir} (it is rebuilt)") from None
        n = max(rows.values()) + 1 if rows else 0
        if n > self._matrix.shape[0]:
            have = self.vec_path.stat().st_size // (4 * self.dim) if self.vec_path.exists() else 0
            if have < n:
                raise UserError(f"{self.dir}: embedding cache is damaged (index past the vectors); delete that folder")
            raw = np.fromfile(self.vec_path, dtype=np.float32, count=n * self.dim)
            self._buffer = raw.reshape(n, self.dim)
            self._matrix = self._buffer
        self.rows = rows

    def _grow(self, n: int) -> None:
        """Make `_matrix` n rows long, over a buffer that doubles when full: appending
        chunk after chunk copies O(n) rows in all, not O(n^2), and a matrix handed out
        earlier stays valid (its rows are never moved or changed)."""
        if n > self._buffer.shape[0]:
            buffer = np.empty((max(n, 2 * self._buffer.shape[0]), self.dim), np.float32)
            buffer[:self._matrix.shape[0]] = self._matrix
            self._buffer = buffer
        self._matrix = self._buffer[:n]

    def _append(self, keys: list[str], vectors: np.ndarray) -> None:
        with _locked(self.dir / "lock"):
            self._refresh()
            fresh = [i for i, k in enumerate(keys) if k not in self.rows]
            if not fresh:
                return
            start = self._matrix.shape[0]
            block = np.ascontiguousarray(vectors[fresh], dtype=np.float32)
            mode = "r+b" if self.vec_path.exists() else "wb"
            with open(self.vec_path, mode) as f:
                f.seek(start * self.dim * 4)  # over any rows a killed writer left unindexed
                f.write(block.tobytes())
                f.truncate()
                f.flush()
                os.fsync(f.fileno())
            with JsonlAppender(self.idx_path) as w:
                w.write({"k": keys[i], "r": start + j} for j, i in enumerate(fresh))
            self._grow(start + len(block))
            self._matrix[start:] = block
            for j, i in enumerate(fresh):
                self.rows[keys[i]] = start + j


@contextlib.contextmanager
def _locked(path: Path):
    try:
        import fcntl
    except ImportError:  # no POSIX locks (Windows): one writer at a time is then the user's job
        yield
        return
    with open(path, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
