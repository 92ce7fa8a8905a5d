"""`mini-domains`: the mini world's shapes as a classification task across visual domains
(the offline counterpart of PACS / DomainNet in Zhang et al. 2024).

Every image holds one shape (circle, square or triangle) at a random place and size; the
question is the paper's ("What is in this image?") with the three shapes as choices and
the shape as the answer. Four domains draw the same task in four styles:

    plain        a filled shape on a plain light background (the style the bundled
                 tiny-llava was trained on, there with several shapes per image)
    photo        a filled shape over a photograph shipped with scikit-image
    sketch       a hand-drawn outline: dark jittered strokes on paper, no fill
    microscopy   a stained-tissue texture: pink background with purple "nuclei", the
                 shape a stippled purple region

Generated from a seed: no image file is shipped. The domain is `Sample.domain`; the ID
set is `plain` and the other styles are second domains, so the benchmark also runs under
the other suites (their ID set is then the plain style).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from emidbench.benchmarks.base import Benchmark, Sample
from emidbench.benchmarks.choices import DEFAULT_STEM
from emidbench.benchmarks.mini import COLORS, IMAGE_SIZE, PHOTOS, SHAPES, _photo
from emidbench.common.images import pil_png

STYLES = ("plain", "photo", "sketch", "microscopy")
SIZES = {"default": 12, "large": 100}  # images per class and domain
NAME = "mini_domains"


def shape_points(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    if shape == "square":
        return [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "triangle":
        return [(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    return [(cx + r * np.cos(a), cy + r * np.sin(a)) for a in angles]


def _mask(shape: str, cx: float, cy: float, r: float, size: int) -> np.ndarray:
    m = Image.new("L", (size, size), 0)
    ImageDraw.Draw(m).polygon(shape_points(shape, cx, cy, r), fill=255)
    return np.asarray(m) > 0


def render(style: str, shape: str, color: str, rng: np.random.Generator, size: int = IMAGE_SIZE) -> Image.Image:
    r = float(rng.uniform(0.2, 0.34) * size)
    cx, cy = (float(rng.uniform(r + 2, size - r - 2)) for _ in range(2))
    if style == "plain":
        shade = int(rng.integers(235, 256))
        img = Image.new("RGB", (size, size), (shade, shade, shade))
        ImageDraw.Draw(img).polygon(shape_points(shape, cx, cy, r), fill=COLORS[color])
        return img
    if style == "photo":
        photo = _photo(str(rng.choice(PHOTOS)))
        h, w = photo.shape[:2]
        side = int(min(h, w) * rng.uniform(0.4, 0.9))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        img = Image.fromarray(photo[y:y + side, x:x + side]).resize((size, size), Image.BILINEAR)
        ImageDraw.Draw(img).polygon(shape_points(shape, cx, cy, r), fill=COLORS[color])
        return img
    if style == "sketch":
        paper = np.full((size, size, 3), 250.0) - rng.uniform(0, 12, (size, size, 1))
        img = Image.fromarray(paper.clip(0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
        pen = tuple(int(v) for v in rng.integers(20, 70, 3))
        for _ in range(2):  # two passes of a wobbly hand
            pts = [(x + rng.normal(0, 1.2), y + rng.normal(0, 1.2)) for x, y in shape_points(shape, cx, cy, r)]
            draw.line(pts + pts[:1], fill=pen, width=int(rng.integers(1, 3)))
        return img
    if style == "microscopy":
        base = np.array([236.0, 186.0, 210.0]) + rng.normal(0, 10, (size, size, 3))
        img = Image.fromarray(base.clip(0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(10, 20))):  # scattered nuclei
            x, y, rr = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(1.5, 3.5)
            draw.ellipse([x - rr, y - rr, x + rr, y + rr], fill=(150, 90, 170))
        arr = np.asarray(img, float)
        inside = _mask(shape, cx, cy, r, size)
        stain = np.array([110.0, 50.0, 140.0]) + rng.normal(0, 22, (size, size, 3))
        dots = rng.random((size, size)) < 0.8  # stippled, not flat
        arr[inside & dots] = stain[inside & dots]
        return Image.fromarray(arr.clip(0, 255).astype(np.uint8))
    raise ValueError(style)


def load_mini_domains(seed: int = 0, size: str = "default") -> Benchmark:
    """`mini_domains`: ID set `plain`, second domains photo, sketch, microscopy."""
    if size not in SIZES:
        from emidbench.common.errors import UserError

        raise UserError(f"mini-domains: unknown size {size!r} (choose from {', '.join(SIZES)})")
    per_class = SIZES[size]
    rng = np.random.default_rng([seed, 2])  # stream 2: this benchmark (mini uses 1)
    by_style: dict[str, list[Sample]] = {}
    for d, style in enumerate(STYLES):
        samples = []
        labels = [shape for shape in SHAPES for _ in range(per_class)]
        for i, k in enumerate(rng.permutation(len(labels))):
            shape = labels[k]
            color = str(rng.choice(list(COLORS)))
            png = pil_png(render(style, shape, color, rng))
            samples.append(Sample(
                question_id=d * 10000 + i, image=png, image_name=f"{style}_{i:04d}.png", text=DEFAULT_STEM,
                reference=shape, category="conv", context=f"a {color} {shape} drawn in the {style} style.",
                choices=SHAPES, domain=style,
            ))
        by_style[style] = samples
    return Benchmark(NAME, by_style["plain"], {s: by_style[s] for s in STYLES[1:]},
                     source=f"mini-domains(seed={seed}, size={size})")
