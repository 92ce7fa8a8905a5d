"""Small builders shared by tests (no fixtures: plain functions, importable anywhere)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "reference"


def reference_dir(*parts: str) -> Path | None:
    """A folder of ../shared/reference, or None when this clone has nothing beside it."""
    path = REFERENCE.joinpath(*parts)
    return path if path.exists() else None


def photo_like(seed: int, size=(96, 72), fmt="JPEG", blur: float = 0.0) -> bytes:
    """A deterministic image with gradients and noise (corruptions behave as on photos),
    optionally blurred as a shift would."""
    from PIL import ImageFilter

    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * 255 / w), (y * 255 / h), ((x + y) * 127 / (w + h))], -1)
    img = Image.fromarray(np.clip(base + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8))
    if blur:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def write_jsonl(path: Path, records) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def make_llava_folder(root: Path, n_images: int = 3, per_image: int = 2) -> Path:
    """A LLaVA-style eval folder with generated images and simple references."""
    qs, ans = [], []
    (root / "images").mkdir(parents=True, exist_ok=True)
    for i in range(n_images):
        name = f"img_{i}.jpg"
        (root / "images" / name).write_bytes(photo_like(i))
        for j in range(per_image):
            qid = i * per_image + j
            qs.append({"question_id": qid, "image": name, "text": f"What is in picture {i}, part {j}?",
                       "category": ["conv", "detail", "complex"][qid % 3]})
            ans.append({"question_id": qid, "text": f"Picture {i} shows gradients ({j}).", "category": "conv"})
    write_jsonl(root / "questions.jsonl", qs)
    write_jsonl(root / "answers.jsonl", ans)
    return root


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 600):
    """Run `python -m emidbench ARGS` for real; returns CompletedProcess (text)."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "emidbench", *map(str, args)], cwd=cwd or REPO,
                          env=full_env, capture_output=True, text=True, timeout=timeout)


def reproducible_bytes(path):
    """A file's bytes; for score.json, the bytes it has with its timings emptied (each
    step's wall time differs from run to run), after checking they are there."""
    data = path.read_bytes()
    if path.name != "score.json":
        return data
    record = json.loads(data)
    steps = record["timings"]["steps"]
    assert {"read answers", "embed", "estimator", "metrics", "write"} <= set(steps)
    assert all(isinstance(v, float) and v >= 0 for v in steps.values()) and record["timings"]["total"] >= 0
    record["timings"] = {}
    return json.dumps(record, indent=2).encode()
