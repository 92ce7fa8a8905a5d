"""The easy / normal / hard split of a second visual domain, computed as the paper did:
rank its samples by how far their image is from the ID set in an embedding space —
closest half = easy, farthest half = hard, all = normal.

Distance of an image = 1 - cosine similarity between its embedding and the mean (L2-
normalised) embedding of the ID images. The embedder is pluggable: any callable
`embed_images(list[bytes]) -> (n, d) array`; the default needs no download.
"""

from __future__ import annotations

import numpy as np

from emidbench.benchmarks.base import Sample


def pixel_embedder(images: list[bytes]) -> np.ndarray:
    """Offline default: a 16x16 thumbnail plus an 8-bin-per-channel colour histogram,
    L2-normalised. A proxy for a learned image embedder, deterministic and fast."""
    from emidbench.benchmarks.base import decode_image

    rows = []
    for i, data in enumerate(images):
        img = decode_image(data, f"image {i}")
        thumb = np.asarray(img.resize((16, 16)), dtype=np.float64).ravel() / 255.0
        arr = np.asarray(img, dtype=np.uint8).reshape(-1, 3)
        hist = np.concatenate([np.bincount(arr[:, c] // 32, minlength=8) for c in range(3)]) / len(arr)
        v = np.concatenate([thumb - thumb.mean(), hist])
        rows.append(v / (np.linalg.norm(v) or 1.0))
    return np.stack(rows)


def natural_split(id_samples: list[Sample], domain_samples: list[Sample], embed_images=None) -> dict:
    """{"easy": [qid...], "hard": [...], "normal": [...], "distance": {qid: d}} in
    question order within each split."""
    embed = embed_images or pixel_embedder
    id_imgs = _distinct(id_samples)
    dom_imgs = _distinct(domain_samples)
    centroid = embed(list(id_imgs.values())).mean(axis=0)
    centroid /= np.linalg.norm(centroid) or 1.0
    dom_emb = embed(list(dom_imgs.values()))
    dist_by_img = dict(zip(dom_imgs, (1.0 - dom_emb @ centroid).tolist()))
    order = {s.question_id: i for i, s in enumerate(domain_samples)}
    dist = {s.question_id: round(float(dist_by_img[s.image]), 6) for s in domain_samples}
    ranked = sorted(domain_samples, key=lambda s: (dist[s.question_id], order[s.question_id]))
    half = len(ranked) // 2
    easy = {s.question_id for s in ranked[:half]}
    return {
        "easy": [s.question_id for s in domain_samples if s.question_id in easy],
        "hard": [s.question_id for s in domain_samples if s.question_id not in easy],
        "normal": [s.question_id for s in domain_samples],
        "distance": {str(k): v for k, v in dist.items()},
    }


def _distinct(samples: list[Sample]) -> dict[bytes, bytes]:
    out: dict = {}
    for s in samples:
        out.setdefault(s.image, s.image)
    return out
