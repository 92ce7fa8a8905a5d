"""Embeddings cached by content: sha256(image bytes) or sha256(text), per embedder
identity, under RUN/cache/embeddings/<identity hash>/. Each distinct image and text is
embedded once across all scenarios and all models.

Store: `vectors.f32` (rows appended) + `index.jsonl` (key -> row, appended after the
row's bytes are on disk). A crash leaves at most rows without an index line, which are
ignored and overwritten.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from emidbench.rundir import JsonlAppender, atomic_write_text, iter_jsonl


class EmbeddingCache:
    def __init__(self, root: Path, embedder):
        ident = hashlib.sha256(embedder.identity.encode()).hexdigest()[:16]
        self.dir = Path(root) / ident
        self.dir.mkdir(parents=True, exist_ok=True)
        self.embedder = embedder
        self.dim = embedder.dim
        self.vec_path = self.dir / "vectors.f32"
        self.idx_path = self.dir / "index.jsonl"
        if not (self.dir / "embedder.txt").exists():
            atomic_write_text(self.dir / "embedder.txt", embedder.identity + "\n")
        self.rows: dict[str, int] = {}
        if self.idx_path.exists():
            for _, rec in iter_jsonl(self.idx_path, allow_torn_tail=True):
                self.rows[rec["k"]] = rec["r"]
        self._vectors = self._load()
        self.computed = 0  # items embedded by this process (for tests and the summary)

    def _load(self) -> np.ndarray:
        n = len(self.rows)
        if n == 0 or not self.vec_path.exists():
            return np.zeros((0, self.dim), np.float32)
        raw = np.fromfile(self.vec_path, dtype=np.float32)
        return raw[: n * self.dim].reshape(n, self.dim).copy()

    def images(self, images: list[bytes]) -> np.ndarray:
        return self._get([hashlib.sha256(b"img:" + b).hexdigest() for b in images], images,
                         self.embedder.embed_images)

    def texts(self, texts: list[str]) -> np.ndarray:
        return self._get([hashlib.sha256(("txt:" + t).encode("utf-8")).hexdigest() for t in texts], texts,
                         self.embedder.embed_texts)

    def _get(self, keys: list[str], items: list, fn) -> np.ndarray:
        todo: dict[str, object] = {}
        for k, it in zip(keys, items):
            if k not in self.rows and k not in todo:
                todo[k] = it
        if todo:
            new = np.asarray(fn(list(todo.values())), dtype=np.float32)
            start = len(self.rows)
            with open(self.vec_path, "r+b" if self.vec_path.exists() else "wb") as f:
                f.seek(start * self.dim * 4)  # past any rows a crash left unindexed
                f.write(new.tobytes())
                f.truncate()
                f.flush()
                os.fsync(f.fileno())
            with JsonlAppender(self.idx_path) as w:
                w.write({"k": k, "r": start + i} for i, k in enumerate(todo))
            for i, k in enumerate(todo):
                self.rows[k] = start + i
            self._vectors = np.concatenate([self._vectors, new])
            self.computed += len(todo)
        return self._vectors[[self.rows[k] for k in keys]]
