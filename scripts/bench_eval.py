"""Throughput of `emidbench eval` (hf backend): questions/s at batch 1 vs batch 16, and
1 vs 2 torchrun processes at batch 1.

    python scripts/bench_eval.py [--questions 96] [--max-new-tokens 24]

GPU mode, for a hub model (needs the hub or a cached copy, and a GPU): items/s and
generated tokens/s at batch 1, 8 and 32 with the hf backend and, when vLLM is installed,
the vllm backend, printed with their ratios to hf at batch 1:

    python scripts/bench_eval.py --model Qwen/Qwen2-VL-2B-Instruct [--questions 256]
        [--batch-sizes 1 8 32] [--max-new-tokens 64] [--dtype auto]

(generated tokens are counted by re-tokenising each answer with the model's tokenizer.)

Builds a tiny LLaVA the way the bundled one is built (emidbench.assets.tiny_llava, same
sizes, untrained), saves it with save_pretrained into a temp folder and loads it through
the same code path as a hub checkpoint. Each measurement answers the same distinct
questions with its own empty response cache, so nothing is served from a cache; the
time is run_eval's answering phase (weights loading included; the slowest rank under
torchrun), not Python start-up. Targets on a 2-core CPU: batch 16 >= 4x batch 1, and
2 processes >= 1.6x 1 process. On a GPU machine the same script measures the GPU
(the 2-process case needs 2 GPUs).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

QUESTIONS = ["What color is the circle?", "How many shapes are in the image?", "Describe the image in detail.",
             "What is in the top left of the image?"]


def build_model(folder: Path) -> Path:
    from emidbench.assets.tiny_llava import build_model as build
    from emidbench.assets.tiny_llava import build_processor, build_tokenizer, vocabulary

    tok = build_tokenizer(vocabulary())
    model = build(tok, seed=0)
    model.save_pretrained(folder)
    build_processor(tok).save_pretrained(folder)
    return folder


def build_run(root: Path, n: int, image) -> Path:
    """n distinct questions (n/4 images x 4 questions), one scenario; image(seed) -> the
    encoded bytes and their extension."""
    from emidbench.rundir import RunDir
    from emidbench.rundir.manifest import Manifest, ScenarioEntry

    rd = RunDir(root)
    records = []
    for qid in range(n):
        if qid % len(QUESTIONS) == 0:
            name = rd.put_image(*image(qid // len(QUESTIONS)))
        records.append({"question_id": qid, "image": name, "text": QUESTIONS[qid % len(QUESTIONS)],
                        "category": "conv", "reference": ""})
    rd.write_scenario("bench", records)
    rd.write_manifest(Manifest("bench", "bench", 0, "bench",
                               [ScenarioEntry("bench", "id", "none", None, None, n, "bench.jsonl")]))
    return root


def small_png(seed: int) -> tuple[bytes, str]:
    """A 64x64 noise image: the bundled tiny model's input size."""
    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue(), "png"


def photo(seed: int) -> tuple[bytes, str]:
    """A photograph-sized (640x480) JPEG, as hub models meet."""
    from photos import photo_jpeg

    return photo_jpeg(seed), "jpg"


def in_process(run: Path, model: Path, batch_size: int, max_new_tokens: int, tag: str) -> float:
    from emidbench.eval import run_eval

    s = run_eval(run, str(model), name=tag, batch_size=batch_size, max_new_tokens=max_new_tokens,
                 cache_dir=run / f"cache-{tag}")
    assert s.failed == 0 and s.generated == s.done, s.line()
    return s.done / s.seconds


def under_torchrun(run: Path, model: Path, procs: int, max_new_tokens: int, tag: str) -> float:
    out = run / f"{tag}.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}",
           str(Path(__file__).resolve()), "--worker", str(run), str(model), tag, str(max_new_tokens), str(out)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"torchrun failed:\n{proc.stderr[-3000:]}")
    r = json.loads(out.read_text())
    return r["done"] / r["seconds"]


def worker(run: str, model: str, tag: str, max_new_tokens: str, out: str) -> None:
    """One torchrun rank: run_eval shards by itself; rank 0 writes the combined counts."""
    from emidbench.eval import run_eval

    s = run_eval(Path(run), model, name=tag, batch_size=1, max_new_tokens=int(max_new_tokens),
                 cache_dir=Path(run) / f"cache-{tag}")
    if int(os.environ.get("RANK", 0)) == 0:
        Path(out).write_text(json.dumps({"done": s.done, "seconds": s.seconds, "world": s.world_size}))


def gpu_mode(args) -> None:
    """hf (and vllm, when installed) on a hub model at several batch sizes; ratios to hf batch 1."""
    import importlib.util

    from transformers import AutoTokenizer

    from emidbench.common.io import read_jsonl
    from emidbench.eval import run_eval
    from emidbench.rundir import RunDir

    tok = AutoTokenizer.from_pretrained(args.model)
    backends = ["hf"] + (["vllm"] if importlib.util.find_spec("vllm") else [])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        run = build_run(Path(tmp) / "run", args.questions, photo)
        run_eval(run, args.model, name="warmup", batch_size=4, max_new_tokens=4, dtype=args.dtype,
                 scenarios="bench", cache_dir=run / "cache-warmup")
        for backend in backends:
            for bs in args.batch_sizes:
                tag = f"{backend}-b{bs}"
                # vLLM schedules its own batches: its batch size is the sequences it runs at once
                extra = {"max_num_seqs": bs} if backend == "vllm" else {}
                s = run_eval(run, args.model, backend=backend, name=tag, batch_size=bs,
                             max_new_tokens=args.max_new_tokens, dtype=args.dtype, cache_dir=run / f"cache-{tag}",
                             **extra)
                texts = [r["text"] for r in read_jsonl(RunDir(run).responses_path(tag, "bench"))]
                tokens = sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts)
                rows.append((tag, s.done / s.seconds, tokens / s.seconds, s.failed, sum(s.fallbacks.values())))
    base_items, base_tokens = rows[0][1], rows[0][2]
    print(f"{args.model}, {args.questions} questions (640x480), max_new_tokens {args.max_new_tokens}, "
          f"dtype {args.dtype}; vllm {'installed' if 'vllm' in backends else 'not installed'}")
    print(f"{'run':<12} {'items/s':>9} {'tokens/s':>10} {'items x':>8} {'tokens x':>9} failed fallbacks")
    for tag, items, tokens, failed, fell in rows:
        print(f"{tag:<12} {items:9.2f} {tokens:10.1f} {items / base_items:8.2f} {tokens / base_tokens:9.2f} "
              f"{failed:6d} {fell:9d}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, default=None, help="default 96 (CPU), 256 (--model)")
    ap.add_argument("--max-new-tokens", type=int, default=None, help="default 24 (CPU), 64 (--model)")
    ap.add_argument("--model", help="GPU mode: a hub model id (or local path) to measure")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32], help="GPU mode")
    ap.add_argument("--dtype", default="auto", help="GPU mode")
    ap.add_argument("--worker", nargs=5, metavar=("RUN", "MODEL", "TAG", "TOKENS", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(*args.worker)
    if args.model:
        args.questions = args.questions or 256
        args.max_new_tokens = args.max_new_tokens or 64
        return gpu_mode(args)
    args.questions = args.questions or 96
    args.max_new_tokens = args.max_new_tokens or 24

    import torch

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        model = build_model(Path(tmp) / "tiny-llava")
        run = build_run(Path(tmp) / "run", args.questions, small_png)
        device = ("cuda" if torch.cuda.is_available()
                  else f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} threads)")
        print(f"tiny LLaVA (untrained, bundled sizes), {args.questions} questions, max_new_tokens "
              f"{args.max_new_tokens}, on {device}")
        in_process(run, model, 4, 4, "warmup")
        b1 = in_process(run, model, 1, args.max_new_tokens, "b1")
        b16 = in_process(run, model, 16, args.max_new_tokens, "b16")
        print(f"batch  1: {b1:7.1f} questions/s")
        print(f"batch 16: {b16:7.1f} questions/s   ratio {b16 / b1:.2f}x (target >= 4x)")
        if torch.cuda.is_available() and torch.cuda.device_count() < 2:
            print("1 vs 2 processes: skipped (needs 2 GPUs)")
            return
        p1 = under_torchrun(run, model, 1, args.max_new_tokens, "p1")
        p2 = under_torchrun(run, model, 2, args.max_new_tokens, "p2")
        print(f"torchrun 1 process,   batch 1: {p1:7.1f} questions/s")
        print(f"torchrun 2 processes, batch 1: {p2:7.1f} questions/s   ratio {p2 / p1:.2f}x (target >= 1.6x)")


if __name__ == "__main__":
    main()
