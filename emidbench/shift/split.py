"""The easy / normal / hard split of a second visual domain, computed as the paper did:
rank its samples by how far their image is from the ID set in an image-embedding space —
closest half = easy, farthest half = hard, all = normal.

Distance of an image = 1 - cosine similarity between its (L2-normalised) embedding and
the centroid of the ID images' embeddings (mean of the distinct ID images, normalised).
The centroid, not the mean distance to every ID image: one matrix-vector product, and
with normalised embeddings the two rank images almost identically. Samples are ranked by
their image's distance (questions on one image share it; ties keep question order); easy
is the first floor(n/2), hard the rest, so with an odd n hard has one more.

The embedder is pluggable: any callable `embed_images(list[bytes]) -> (n, d) array`, or
an object with such an `embed_images` method — the score stage's embedders, by name with
`split_embedder("paper", vision_encoder=...)` (the paper ranked by CLIP distance). The
default, `pixel_embedder`, needs no download: deterministic, fast, a proxy for a learned
one.
"""

from __future__ import annotations

import numpy as np

from emidbench.benchmarks.base import Sample
from emidbench.common.images import decode_image
from emidbench.common.errors import UserError

PIXEL = "pixel"
DEFAULT_EMBEDDER = "pixel (16x16 thumbnail + 8-bin RGB histogram)"


def split_embedder(name: str | None, **options):
    """The embedder called `name`: `pixel` (None, the built-in proxy) or a score-stage
    embedder (`paper`, `offline`) built with `options` (vision_encoder, ...), for images only."""
    if check_split_embedder(name) == PIXEL:
        return None
    from emidbench.embedders import make_embedder

    return make_embedder(name, **options, images_only=True)  # the split embeds images only


def check_split_embedder(name: str | None) -> str:
    """The name, if it is one (None = pixel); else one clear error. Loads nothing."""
    if name in (None, PIXEL):
        return PIXEL
    from emidbench.embedders import EMBEDDERS

    if name not in EMBEDDERS:
        raise UserError(f"unknown split embedder {name!r} (known: {', '.join([PIXEL, *sorted(EMBEDDERS)])})")
    return name


def pixel_embedder(images: list[bytes]) -> np.ndarray:
    """A 16x16 thumbnail (mean-removed) plus an 8-bin-per-channel colour histogram,
    L2-normalised."""
    rows = []
    for i, data in enumerate(images):
        img = decode_image(data, f"image {i}")
        thumb = np.asarray(img.resize((16, 16), resample=2), dtype=np.float64).ravel() / 255.0  # 2 = bilinear
        arr = np.asarray(img, dtype=np.uint8).reshape(-1, 3)
        hist = np.concatenate([np.bincount(arr[:, c] // 32, minlength=8) for c in range(3)]) / len(arr)
        v = np.concatenate([thumb - thumb.mean(), hist])
        rows.append(v / (np.linalg.norm(v) or 1.0))
    return np.stack(rows)


def embedder_name(embedder) -> str:
    if embedder is None:
        return DEFAULT_EMBEDDER
    # the identity names the checkpoints too (paper:<hash of CLIP and XLM-R folders>)
    return str(getattr(embedder, "identity", None) or getattr(embedder, "name", None) or getattr(embedder, "__qualname__", None) or type(embedder).__name__)


def _embed_fn(embedder):
    if embedder is None:
        return pixel_embedder
    return getattr(embedder, "embed_images", embedder)


def natural_split(id_samples: list[Sample], domain_samples: list[Sample], embedder=None) -> dict:
    """{"easy": [qid...], "hard": [...], "normal": [...], "distance": {qid: d}, "embedder": name};
    each split in question order."""
    embed = _embed_fn(embedder)
    id_imgs = _distinct(id_samples)
    dom_imgs = _distinct(domain_samples)
    id_emb = _normalise(np.asarray(embed(list(id_imgs.values())), dtype=np.float64), len(id_imgs))
    centroid = id_emb.mean(axis=0)
    centroid /= np.linalg.norm(centroid) or 1.0
    dom_emb = _normalise(np.asarray(embed(list(dom_imgs.values())), dtype=np.float64), len(dom_imgs))
    dist_by_img = dict(zip(dom_imgs, (1.0 - dom_emb @ centroid).tolist()))
    # Rounded so the ranking and the recorded numbers agree across BLAS builds.
    dist = {s.question_id: round(float(dist_by_img[s.image_hash]), 6) for s in domain_samples}
    order = {s.question_id: i for i, s in enumerate(domain_samples)}
    ranked = sorted(domain_samples, key=lambda s: (dist[s.question_id], order[s.question_id]))
    easy = {s.question_id for s in ranked[:len(ranked) // 2]}
    return {
        "easy": [s.question_id for s in domain_samples if s.question_id in easy],
        "hard": [s.question_id for s in domain_samples if s.question_id not in easy],
        "normal": [s.question_id for s in domain_samples],
        "distance": {str(k): v for k, v in dist.items()},
        "embedder": embedder_name(embedder),
        "rule": "1 - cos(image embedding, centroid of ID image embeddings); easy = closest floor(n/2) questions",
    }


def _normalise(emb: np.ndarray, n: int) -> np.ndarray:
    if emb.ndim != 2 or emb.shape[0] != n:
        raise ValueError(f"image embedder returned shape {emb.shape} for {n} images; expected ({n}, d)")
    return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)


def _distinct(samples: list[Sample]) -> dict[str, bytes]:
    out: dict = {}
    for s in samples:
        out.setdefault(s.image_hash, s.image)
    return out
