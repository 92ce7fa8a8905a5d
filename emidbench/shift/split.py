"""The easy / normal / hard split of a second visual domain, computed as the paper did:
rank its samples by how far their image is from the ID set in an image-embedding space —
closest half = easy, farthest half = hard, all = normal.

Distance of an image = 1 - cosine similarity between its (L2-normalised) embedding and
the centroid of the ID images' embeddings (mean of the distinct ID images, normalised).
The centroid, not the mean distance to every ID image: one matrix-vector product, and
with normalised embeddings the two rank images almost identically. Samples are ranked by
their image's distance, and the split is per image, as the paper's: an image's questions
are always on the same side. Images are taken closest first (ties: the image's first
question comes first) into easy while easy stays within floor(n/2) questions; the first
image that does not fit and all farther ones are hard. With three questions per image and
an even count that is exactly half; otherwise hard has the few more.

The paper's own split can be used instead (`read_split_index`): its released
`lbwild_split_idx_dict.pkl` lists 30 question positions per side (keys
`easy_ood_fst_cd_new` / `hard_ood_fst_cd_new`, the pair the authors' code uses). The
pickle is read with an unpickler that builds no objects at all (only dicts, lists, ints
and strings come out of a pickle's plain opcodes; any class or function reference is
refused), or the same content as JSON.

The embedder is pluggable: any callable `embed_images(list[bytes]) -> (n, d) array`, or
an object with such an `embed_images` method — the score stage's embedders, by name with
`split_embedder("paper", vision_encoder=...)` (the paper ranked by CLIP distance). The
default, `pixel_embedder`, needs no download: deterministic, fast, a proxy for a learned
one.
"""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import numpy as np

from emidbench.benchmarks.base import Sample
from emidbench.common.errors import UserError
from emidbench.common.images import decode_image

PIXEL = "pixel"
DEFAULT_EMBEDDER = "pixel (16x16 thumbnail + 8-bin RGB histogram)"


# What the split's embedder may be given. It embeds images only: a text_encoder (a run
# config shared with score may name one) is never loaded.
SPLIT_OPTIONS = ("vision_encoder", "text_encoder", "device")


def split_embedder(name: str | None, options: dict | None = None):
    """The embedder called `name`: `pixel` (None, the built-in proxy) or a score-stage
    embedder (`paper`, `offline`) built with `options` (vision_encoder, device), for images only."""
    options = check_split_options(options)
    if check_split_embedder(name) == PIXEL:
        return None
    from emidbench.embedders import EmbedderOptions, make_embedder

    return make_embedder(name, EmbedderOptions(**options, images_only=True))  # the split embeds images only


def check_split_options(options) -> dict:
    if not isinstance(options or {}, dict):
        raise UserError(f"split_options must be a mapping (vision_encoder, device), not {options!r}")
    for key in options or {}:
        if key not in SPLIT_OPTIONS:
            raise UserError(f"split_options: unknown key {key!r} (the split embeds images: "
                            f"{', '.join(SPLIT_OPTIONS)})")
    return dict(options or {})


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
    id_emb = _embed_images(embed, list(id_imgs.values()))
    centroid = id_emb.mean(axis=0)
    centroid /= np.linalg.norm(centroid) or 1.0
    dom_emb = _embed_images(embed, list(dom_imgs.values()))
    dist_by_img = dict(zip(dom_imgs, (1.0 - dom_emb @ centroid).tolist()))
    # Rounded so the ranking and the recorded numbers agree across BLAS builds.
    dist = {s.question_id: round(float(dist_by_img[s.image_hash]), 6) for s in domain_samples}
    first = {}
    for i, s in enumerate(domain_samples):
        first.setdefault(s.image_hash, i)
    questions_of: dict[str, list] = {}
    for s in domain_samples:
        questions_of.setdefault(s.image_hash, []).append(s.question_id)
    half = len(domain_samples) // 2
    easy: set = set()
    for h in sorted(questions_of, key=lambda h: (round(float(dist_by_img[h]), 6), first[h])):
        if len(easy) + len(questions_of[h]) > half:
            break
        easy.update(questions_of[h])
    return {
        "easy": [s.question_id for s in domain_samples if s.question_id in easy],
        "hard": [s.question_id for s in domain_samples if s.question_id not in easy],
        "normal": [s.question_id for s in domain_samples],
        "distance": {str(k): v for k, v in dist.items()},
        "embedder": embedder_name(embedder),
        "rule": "1 - cos(image embedding, centroid of ID image embeddings); per image: easy = the closest images "
                "while within floor(n/2) questions",
    }


def _normalise(emb: np.ndarray, n: int) -> np.ndarray:
    if emb.ndim != 2 or emb.shape[0] != n:
        raise ValueError(f"image embedder returned shape {emb.shape} for {n} images; expected ({n}, d)")
    return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)


def _distinct(samples: list[Sample]) -> dict[str, Sample]:
    """A sample of each distinct image, by content hash, in first-seen order."""
    out: dict = {}
    for s in samples:
        out.setdefault(s.image_hash, s)
    return out


EMBED_CHUNK = 64  # images read and embedded at a time (a benchmark's images are never all in memory)


def _embed_images(embed, samples: list[Sample]) -> np.ndarray:
    """Unit-length embeddings of the samples' images, EMBED_CHUNK images at a time."""
    parts = [_normalise(np.asarray(embed([s.read_image() for s in chunk]), dtype=np.float64), len(chunk))
             for chunk in (samples[i:i + EMBED_CHUNK] for i in range(0, len(samples), EMBED_CHUNK))]
    return np.concatenate(parts) if parts else np.zeros((0, 1))


# --------------------------------------------------------------------------- the paper's split

SPLIT_INDEX_KEYS = (("easy_ood_fst_cd_new", "hard_ood_fst_cd_new"), ("easy", "hard"))


class _DataOnlyUnpickler(pickle.Unpickler):
    """Dicts, lists, tuples, ints, floats, strings, bools and None come from a pickle's own
    opcodes; everything else needs find_class, which is refused here. So no callable is
    ever looked up, and no __reduce__ payload can run."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refers to {module}.{name}; only plain data (dicts, lists, ints) is read")


def read_split_index(path) -> dict:
    """The paper's easy/hard split: {"easy": [positions], "hard": [...], "key": the pair
    used, "file", "sha256"}. A pickle (read safely) or JSON, same content."""
    from emidbench.common.hashing import content_hash

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UserError(f"--split-index {path}: cannot read ({e.strerror or e})") from None
    if data[:1] in (b"{", b"[") or path.suffix == ".json":
        try:
            obj = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UserError(f"--split-index {path}: not valid JSON ({e})") from None
    else:
        try:
            obj = _DataOnlyUnpickler(io.BytesIO(data)).load()
        except pickle.UnpicklingError as e:
            raise UserError(f"--split-index {path}: refused: the pickle {e}") from None
        except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError) as e:  # not a pickle
            raise UserError(f"--split-index {path}: not a pickle or JSON split index ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise UserError(f"--split-index {path}: expected a mapping of split name -> question positions, "
                        f"not {type(obj).__name__}")
    for easy_key, hard_key in SPLIT_INDEX_KEYS:
        if easy_key in obj and hard_key in obj:
            break
    else:
        raise UserError(f"--split-index {path}: no easy/hard pair (looked for "
                        f"{' or '.join('/'.join(k) for k in SPLIT_INDEX_KEYS)}; has {', '.join(map(str, obj))})")
    out = {"key": [easy_key, hard_key], "file": path.name, "sha256": content_hash(data)}
    for side, key in (("easy", easy_key), ("hard", hard_key)):
        pos = obj[key]
        if not isinstance(pos, (list, tuple)) or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0
                                                          for i in pos):
            raise UserError(f"--split-index {path}: {key} must be a list of question positions (integers >= 0)")
        out[side] = [int(i) for i in pos]
    both = set(out["easy"]) & set(out["hard"])
    if both:
        raise UserError(f"--split-index {path}: positions {sorted(both)[:5]} are on both sides")
    return out


def split_from_index(index: dict, domain_samples: list[Sample]) -> dict:
    """The split of `domain_samples` (in the domain's question order) at the given positions."""
    n = len(domain_samples)
    bad = [i for i in index["easy"] + index["hard"] if i >= n]
    if bad:
        raise UserError(f"--split-index {index['file']}: position {bad[0]} is past the domain's {n} questions")
    easy, hard = set(index["easy"]), set(index["hard"])
    return {
        "easy": [s.question_id for i, s in enumerate(domain_samples) if i in easy],
        "hard": [s.question_id for i, s in enumerate(domain_samples) if i in hard],
        "normal": [s.question_id for s in domain_samples],
        "embedder": None,
        "rule": f"released split index {index['file']} (sha256 {index['sha256'][:12]}...), keys "
                f"{', '.join(index['key'])}: positions in the domain's question order",
        "split_index": {k: index[k] for k in ("file", "sha256", "key")},
    }
