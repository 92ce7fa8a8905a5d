"""`offline`: an embedder that needs no download — for smoke runs, CI and the offline demo.

A PROXY. Its EMI / EMID / bound numbers are NOT comparable with the paper's CLIP + XLM-R
numbers (nor with the published CLUB estimator, which expects 768-d paper embeddings);
use them to exercise the pipeline or to compare runs made with this same embedder.

Images (any format Pillow decodes): a small feature vector — an 8x8 colour thumbnail
(mean-centred), per-channel 8-bin histograms, channel means and spreads, and horizontal
and vertical gradient energy at 64x64 (so blur and frost move it) — times a fixed-seed
Gaussian projection matrix.
Texts (any script, UTF-8): NFC-normalised, case-folded; word unigrams and character
1- to 3-grams (the characters of words, with word boundaries), each hashed with BLAKE2b
(stable across processes and machines, unlike Python's hash()) to a signed coordinate,
log-scaled counts. Rows are L2-normalised, in float32.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections import Counter

import numpy as np

from emidbench.embedders import EMBEDDERS, Embedder, EmbedderOptions

DIM = 256
VERSION = "offline-v2"
_THUMB = 8
_BINS = 8
_N_FEATURES = _THUMB * _THUMB * 3 + 3 * _BINS + 6 + 2
_WORD = re.compile(r"\w+", re.UNICODE)


@EMBEDDERS.register("offline", "no download, any script; a PROXY (numbers not comparable with the paper's)")
class OfflineEmbedder(Embedder):
    name = "offline"

    def __init__(self, options: EmbedderOptions = EmbedderOptions(), dim: int = DIM):
        """dim: the vectors' width (a library parameter: runs use DIM)."""
        self.dim = int(dim)
        self.identity = f"{VERSION}-{self.dim}"
        seed = int.from_bytes(hashlib.sha256(VERSION.encode()).digest()[:8], "little")
        rng = np.random.default_rng(seed)
        self._proj = rng.standard_normal((_N_FEATURES, self.dim)) / math.sqrt(self.dim)

    def describe(self) -> dict:
        return {"dim": self.dim, "proxy": True}

    def embed_images(self, images: list[bytes]) -> np.ndarray:
        from emidbench.common.images import decode_image

        feats = np.zeros((len(images), _N_FEATURES))
        for i, data in enumerate(images):
            feats[i] = _image_features(decode_image(data, f"image {i}"))
        return _normalise(feats @ self._proj)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim))
        for i, text in enumerate(texts):
            for gram, count in _grams(text).items():
                d = hashlib.blake2b(gram.encode("utf-8"), digest_size=8).digest()
                idx = int.from_bytes(d[:4], "little") % self.dim
                out[i, idx] += (1.0 if d[4] & 1 else -1.0) * (1.0 + math.log(count))
        return _normalise(out)


def _image_features(img) -> np.ndarray:
    from PIL import Image

    small = np.asarray(img.resize((_THUMB, _THUMB), Image.Resampling.BILINEAR), dtype=np.float64) / 255.0
    arr = np.asarray(img.resize((64, 64), Image.Resampling.BILINEAR), dtype=np.float64) / 255.0
    hist = [np.histogram(arr[..., c], bins=_BINS, range=(0.0, 1.0))[0] / arr[..., c].size for c in range(3)]
    gray = arr.mean(-1)
    grad = [np.abs(np.diff(gray, axis=0)).mean() * 10, np.abs(np.diff(gray, axis=1)).mean() * 10]
    stats = np.concatenate([arr.reshape(-1, 3).mean(0), arr.reshape(-1, 3).std(0)])
    return np.concatenate([(small - small.mean()).ravel(), *hist, stats, grad])


def _grams(text: str) -> Counter:
    words = _WORD.findall(unicodedata.normalize("NFC", text).casefold())
    grams: Counter = Counter({"\x00text": 1})  # never an all-zero row, even for ""
    for w in words:
        grams["w:" + w] += 1
        padded = f" {w} "
        for n in (1, 2, 3):
            for j in range(len(padded) - n + 1):
                grams[f"c{n}:" + padded[j:j + n]] += 1
    return grams


def _normalise(a: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(a, axis=1, keepdims=True)
    norm[norm == 0] = 1.0
    return (a / norm).astype(np.float32)
