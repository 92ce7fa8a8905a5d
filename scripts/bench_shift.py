"""Cost of `emidbench shift` on the paper's 61 scenarios vs the bare cost of its corruptions.

    python scripts/bench_shift.py [--repeat 3] [--workers 1 2]

Builds a benchmark of LLaVA-Bench's size: 30 ID images (640x480 JPEG, photograph-like:
smooth colour fields, edges, sensor noise) with 90 questions (LLaVA-Bench COCO's own
questions when ../shared/reference is there, else templated ones), and a second domain of
24 images with 60 questions; every question has translations into the paper's 6 other
languages, as the released sets do.

Measured, each in a fresh Python process (imports and first-use costs included, from
the moment the benchmark is in memory):
  bare      decode each ID image once and call imagecorruptions.corrupt for each distinct
            (image, corruption, severity) of paper-61 once: no seeding, encoding or I/O
  shift/N   run_shift(benchmark, "paper-61", --workers N) into an empty directory
and, to show where the time goes:
  images/N  run_shift with only the 6 visual shifts (corrupt + encode + store + files)
  text      the 2,520 perturb_text calls paper-61 makes, alone (nlpaug, WordNet)
Targets (issue 4): shift/1 <= 1.2 x bare, shift/2 < bare. The machine may be shared:
--repeat N reports the fastest of N runs of each.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from photos import photo_jpeg  # noqa: E402

QA90 = REPO.parent / "shared" / "reference" / "llava-bench-coco" / "qa90_questions.jsonl"
LANGUAGES = {"German": "Was zeigt dieses Bild", "Chinese": "这张图片显示了什么", "Korean": "이 사진은 무엇을 보여줍니까",
             "Greek": "Τι δείχνει αυτή η εικόνα", "Arabic": "ماذا تظهر هذه الصورة", "Hindi": "यह चित्र क्या दिखाता है"}
IMAGES_ONLY = """synthetic:
  grid: separate
  visual:
    - {name: defocus_blur, severities: [1, 3, 5]}
    - {name: frost, severities: [1, 3, 5]}
"""


def build_benchmark():
    from emidbench.benchmarks.base import Benchmark, Sample

    if QA90.is_file():
        qs = [json.loads(line) for line in QA90.read_text(encoding="utf-8").splitlines() if line.strip()]
        texts = [(q["question_id"], q["text"], q["category"]) for q in qs]
    else:
        texts = [(i, f"What is happening in this picture, detail {i}?", ["conv", "detail", "complex"][i % 3])
                 for i in range(90)]

    def tr(i):
        return {lang: f"{phrase} ({i})?" for lang, phrase in LANGUAGES.items()}

    ids = [photo_jpeg(i) for i in range(30)]
    wild = [photo_jpeg(1000 + i) for i in range(24)]
    samples = [Sample(qid, ids[k // 3], f"coco_{k // 3}.jpg", text, f"reference {qid}", cat, None, tr(qid))
               for k, (qid, text, cat) in enumerate(texts)]
    wild_samples = [Sample(1000 + i, wild[i * 24 // 60], f"wild_{i * 24 // 60}.jpg",
                           f"What stands out about the object in picture {i}?", f"reference {1000 + i}", "conv",
                           None, tr(1000 + i)) for i in range(60)]
    return Benchmark("llava_bench_coco", samples, {"llava_bench_in_the_wild": wild_samples}, "bench_shift")


def cpu_seconds() -> float:
    import resource

    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def measure(mode: str, workers: int) -> tuple[float, float]:
    """One measurement in this (fresh) process: (wall seconds, CPU seconds incl. workers)."""
    bench = build_benchmark()
    out = Path(tempfile.mkdtemp(prefix="bench_shift_"))
    t0, c0 = time.perf_counter(), cpu_seconds()
    if mode == "bare":
        import numpy as np
        from imagecorruptions import corrupt

        from emidbench.common.images import decode_image
        from emidbench.shift.suites import plan_scenarios

        jobs = sorted({(p.visual.name, p.visual.severity) for p in plan_scenarios(bench, "paper-61") if p.visual})
        for data in dict.fromkeys(s.image for s in bench.samples):  # distinct images, in order
            arr = np.asarray(decode_image(data, "image"))
            for name, severity in jobs:
                corrupt(arr, corruption_name=name, severity=severity)
    elif mode in ("shift", "images"):
        from emidbench.shift import run_shift

        suite = "paper-61"
        if mode == "images":
            suite = out / "images-only.yaml"
            suite.write_text(IMAGES_ONLY)
            t0, c0 = time.perf_counter(), cpu_seconds()
        run_shift(bench, suite, out / "run", workers=workers)
    elif mode == "text":
        from emidbench.common.hashing import derive_seed
        from emidbench.shift.suites import plan_scenarios
        from emidbench.shift.text import perturb_text

        for p in plan_scenarios(bench, "paper-61"):
            if p.text:
                for s in bench.samples:
                    perturb_text(s.text, p.text.name, p.text.severity, derive_seed(0, p.name, s.question_id))
    wall = time.perf_counter() - t0
    shutil.rmtree(out, ignore_errors=True)
    return wall, cpu_seconds() - c0


def fresh(mode: str, workers: int = 1) -> tuple[float, float]:
    proc = subprocess.run([sys.executable, __file__, "--one", mode, "--workers", str(workers)],
                          capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONHASHSEED": "0"})
    if proc.returncode != 0:
        sys.exit(f"{mode} failed:\n{proc.stderr}")
    wall, cpu = proc.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--no-breakdown", action="store_true", help="skip the images-only and text-only runs")
    args = ap.parse_args()
    if args.one:
        print(*measure(args.one, args.workers[0]))
        return

    def best(mode, workers=1):
        return min(fresh(mode, workers) for _ in range(args.repeat))

    def show(label, result, bare=None):
        wall, cpu = result
        ratio = f"   ratio {wall / bare[0]:.2f} (CPU {cpu / bare[1]:.2f})" if bare else ""
        print(f"  {label:<46} {wall:6.2f} s wall {cpu:6.2f} s CPU{ratio}")

    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start; "
          f"fastest of {args.repeat} fresh-process run(s) each")
    bare = best("bare")
    show("bare: 180 distinct corruptions, one process", bare)
    for w in args.workers:
        show(f"shift: paper-61, --workers {w}", best("shift", w), bare)
    if not args.no_breakdown:
        for w in args.workers:
            show(f"images: the 6 visual shifts only, --workers {w}", best("images", w), bare)
        show("text: the 2,520 perturb_text calls alone", best("text"))
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
