"""Throughput of `emidbench eval` (hf backend): questions/s at batch 1 vs batch 16, and
1 vs 2 torchrun processes at batch 1.

    python scripts/bench_eval.py [--questions 96] [--max-new-tokens 24]

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


def build_run(root: Path, n: int) -> Path:
    """n distinct questions (n/4 images x 4 questions), one scenario."""
    import numpy as np
    from PIL import Image

    from emidbench.rundir import RunDir
    from emidbench.rundir.manifest import Manifest, ScenarioEntry

    rd = RunDir(root)
    rng = np.random.default_rng(0)
    records = []
    for qid in range(n):
        if qid % len(QUESTIONS) == 0:
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, format="PNG")
            name = rd.put_image(buf.getvalue(), "png")
        records.append({"question_id": qid, "image": name, "text": QUESTIONS[qid % len(QUESTIONS)],
                        "category": "conv", "reference": ""})
    rd.write_scenario("bench", records)
    rd.write_manifest(Manifest("bench", "bench", 0, "bench",
                               [ScenarioEntry("bench", "id", "none", None, None, n, "bench.jsonl")]))
    return root


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, default=96)
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--worker", nargs=5, metavar=("RUN", "MODEL", "TAG", "TOKENS", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(*args.worker)

    import torch

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        model = build_model(Path(tmp) / "tiny-llava")
        run = build_run(Path(tmp) / "run", args.questions)
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
