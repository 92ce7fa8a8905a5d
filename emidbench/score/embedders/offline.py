"""`offline`: an embedder that needs no download, for the offline demo and smoke runs.

Images: a 12x12 thumbnail, colour histograms and edge energy, projected to `dim`
dimensions by a fixed random matrix. Texts: signed feature hashing (blake2b, not
Python's hash) of lower-cased word unigrams, word bigrams and character trigrams — any
script works. Rows are L2-normalised. A PROXY: its EMI/EMID are not comparable with the
paper's CLIP/XLM-R numbers.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

from emidbench.score.embedders import EMBEDDERS

DIM = 256


@EMBEDDERS.register("offline", "no download, any script; a proxy (numbers not comparable with the paper's)")
class OfflineEmbedder:
    name = "offline"

    def __init__(self, dim: int = DIM, **_):
        self.dim = dim
        self.identity = f"offline-v1-{dim}"
        rng = np.random.default_rng(12345)
        self._proj = rng.normal(0, 1 / np.sqrt(self.dim), size=(12 * 12 * 3 + 3 * 16 + 2, dim))

    def embed_images(self, images: list[bytes]) -> np.ndarray:
        from emidbench.benchmarks.base import decode_image

        feats = []
        for i, data in enumerate(images):
            img = decode_image(data, f"image {i}")
            thumb = np.asarray(img.resize((12, 12)), dtype=np.float64) / 255.0
            arr = np.asarray(img.resize((64, 64)), dtype=np.float64) / 255.0
            hist = np.concatenate([np.histogram(arr[..., c], bins=16, range=(0, 1))[0] / arr[..., c].size
                                   for c in range(3)])
            gray = arr.mean(-1)
            edges = [np.abs(np.diff(gray, axis=0)).mean(), np.abs(np.diff(gray, axis=1)).mean()]
            f = np.concatenate([thumb.ravel() - thumb.mean(), hist, np.array(edges) * 10])
            feats.append(f @ self._proj)
        return _normalise(np.stack(feats))

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim))
        for i, t in enumerate(texts):
            words = re.findall(r"\w+", t.lower())
            grams = words + [f"{a} {b}" for a, b in zip(words, words[1:])]
            joined = f" {' '.join(words)} "
            grams += [joined[j:j + 3] for j in range(len(joined) - 2)]
            for g in grams:
                d = hashlib.blake2b(g.encode("utf-8"), digest_size=8).digest()
                idx = int.from_bytes(d[:4], "little") % self.dim
                out[i, idx] += 1.0 if d[4] & 1 else -1.0
        return _normalise(out)


def _normalise(a: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(a, axis=1, keepdims=True)
    n[n == 0] = 1.0
    return (a / n).astype(np.float32)
