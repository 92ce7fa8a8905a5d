"""Photograph-like test images for the benchmark scripts (no image files in the repo)."""

from __future__ import annotations

import io

import numpy as np


def photo_image(seed: int, w: int = 640, h: int = 480):
    """A deterministic PIL image: smooth colour fields, a few hard-edged shapes, sensor noise
    (what corruptions and encoders see in a photograph, at LLaVA-Bench's 640x480)."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    low = Image.fromarray(rng.uniform(0, 255, (6, 8, 3)).astype(np.uint8)).resize((w, h), Image.BICUBIC)
    mid = Image.fromarray(rng.uniform(0, 255, (48, 64, 3)).astype(np.uint8)).resize((w, h), Image.BILINEAR)
    img = Image.blend(low, mid, 0.3)
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, w - 60)), int(rng.integers(0, h - 60))
        box = [x0, y0, x0 + int(rng.integers(30, 200)), y0 + int(rng.integers(30, 200))]
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    arr = np.clip(np.asarray(img, dtype=float) + rng.normal(0, 4, (h, w, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


def photo_jpeg(seed: int, w: int = 640, h: int = 480) -> bytes:
    buf = io.BytesIO()
    photo_image(seed, w, h).save(buf, format="JPEG", quality=90)
    return buf.getvalue()
