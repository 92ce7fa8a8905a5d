"""Small builders shared by tests (no fixtures: plain functions, importable anywhere)."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter
from rich.console import Console

from emidbench.rundir import RunDir
from emidbench.rundir.manifest import Manifest, ScenarioEntry, ShiftSpec

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


def make_llava_folder(root: Path, n_images: int = 3, per_image: int = 2, sizes: list | None = None,
                      fmt: str = "JPEG") -> Path:
    """A LLaVA-style eval folder with generated images and simple references; image i is
    sizes[i % len(sizes)] (w, h) px (default 96x72), in `fmt`."""
    qs, ans = [], []
    (root / "images").mkdir(parents=True, exist_ok=True)
    for i in range(n_images):
        name = f"img_{i}.{'jpg' if fmt == 'JPEG' else fmt.lower()}"
        (root / "images" / name).write_bytes(photo_like(i, size=sizes[i % len(sizes)] if sizes else (96, 72), fmt=fmt))
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


# --------------------------------------------------------------------------- an answered run (score's input)

CATS = ("conv", "detail", "complex")
QUESTIONS = {"conv": "What color is the largest object in the image?",
             "detail": "Describe the image in detail.",
             "complex": "What might happen next in this scene, and why?"}
NOUNS = ["cat", "dog", "bus", "kite", "tree", "boat", "pizza", "clock"]
COLORS = ["red", "blue", "green", "yellow", "white", "black", "orange", "purple"]


def _context(i: int) -> str:
    caps = "\n".join(f"A {COLORS[(i + k) % 8]} {NOUNS[i % 8]} next to a {NOUNS[(i + k + 1) % 8]}." for k in range(5))
    boxes = "\n".join(f"{NOUNS[(i + k) % 8]}: [{0.1 * k:.2f}, 0.2, {0.1 * k + 0.3:.2f}, 0.7]" for k in range(2))
    return f"{caps}\n\n{boxes}"


def _reference(i: int, cat: str) -> str:
    return (f"The image shows a {COLORS[i % 8]} {NOUNS[i % 8]} near a {NOUNS[(i + 3) % 8]}. "
            f"For the {cat} question: it is {COLORS[(i + 2) % 8]} and the scene is calm.")


def _answer(i: int, cat: str, scenario: int) -> str:
    # Worse (further from the reference) the more shifted the scenario.
    good = _reference(i, cat).split()
    rng = random.Random(1000 * scenario + 10 * i + CATS.index(cat))
    words = [w if rng.random() > 0.25 * scenario else rng.choice(NOUNS + COLORS) for w in good]
    return " ".join(words)


def make_answered_run(root, n_images: int = 4, model: str = "m", scenarios=("bench", "bench_blur", "bench_typo"),
             drop: dict | None = None, fail: dict | None = None, shuffle: bool = True):
    """A run directory already answered (no eval): RUN/shifts (manifest, scenario files,
    images) + RUN/responses/<model>/: n_images
    images x 3 questions per scenario; scenario 1 blurs the images, scenario 2 garbles
    the questions. drop/fail: scenario -> question ids with no answer / a failed one."""
    drop, fail = drop or {}, fail or {}
    rd = RunDir(root)
    entries = []
    for s_idx, name in enumerate(scenarios):
        records, answers = [], []
        for i in range(n_images):
            img = Image.open(io.BytesIO(photo_like(i, size=(64, 48))))
            if s_idx == 1:
                img = img.filter(ImageFilter.GaussianBlur(2.5))
            buf = io.BytesIO()
            img.save(buf, format="PNG")
            image = rd.put_image(buf.getvalue(), "png")
            for cat in CATS:
                qid = 3 * i + CATS.index(cat)
                text = QUESTIONS[cat] if s_idx != 2 else QUESTIONS[cat].replace("e", "r").replace("o", "p")
                records.append({"question_id": qid, "image": image, "text": text, "category": cat,
                                "reference": _reference(i, cat), "context": _context(i)})
                if qid in drop.get(name, ()):
                    continue
                meta = {"scenario": name}
                if qid in fail.get(name, ()):
                    meta["error"] = "generation failed"
                answers.append({"question_id": qid, "prompt": text, "answer_id": f"a{qid}",
                                "text": "" if "error" in meta else _answer(i, cat, s_idx),
                                "model_id": model, "metadata": meta})
        rd.write_scenario(name, records)
        if shuffle:  # alignment is by question_id, never by line
            random.Random(s_idx).shuffle(answers)
        path = rd.responses_path(model, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(a) + "\n" for a in answers), encoding="utf-8")
        is_id = s_idx == 0
        entries.append(ScenarioEntry(name, "id" if is_id else "synthetic",
                                     "none" if is_id else ("visual" if s_idx == 1 else "text"),
                                     ShiftSpec("defocus_blur", 3) if s_idx == 1 else None,
                                     ShiftSpec("KeyboardAug", 1) if s_idx == 2 else None,
                                     len(records), f"{name}.jsonl"))
    rd.write_manifest(Manifest("test", "bench", 0, scenarios[0], entries))
    return root


def read_metrics(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return rows


def quiet_console():
    buf = io.StringIO()
    return Console(file=buf, width=200), buf


# --------------------------------------------------------------------------- a tiny chat LLM (an hf judge)

CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} {% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def build_tiny_llama(path):
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = "<pad> <unk> <s> </s> <|system|> <|user|> <|assistant|> the a answer image is of and assistant".split()
    vocab = {w: i for i, w in enumerate(words)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
                                  eos_token="</s>", chat_template=CHAT_TEMPLATE)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                         max_position_embeddings=2048, pad_token_id=0, bos_token_id=2,
                                         eos_token_id=3))
    model.generation_config.pad_token_id = 0
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


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
