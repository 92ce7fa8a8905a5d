"""The campaign at 10x and 100x the paper's size: what each stage costs against its bare work.

    python scripts/bench_scale.py [--sizes large xlarge] [--workers 1 2] [--bootstrap 1000]
                                  [--batch-size 32] [--max-new-tokens 16] [--keep DIR]
                                  [--stream 10000] [--shift-only]

Sizes are `mini --size`: large = 10x the paper's (300 ID images / 900 questions + 240
second-domain images / 600 questions; paper-61 makes 62 scenarios, 45,300 questions),
xlarge = 100x. For each size, every stage runs in a fresh process (its peak RSS is that
process's, read with wait4), against the bare cost of the work it cannot avoid:

  shift/N     run_shift(mini, paper-61, --workers N), timed once the benchmark is in memory
              bare: decode each ID image once and call imagecorruptions.corrupt for each
              distinct (image, corruption, severity); nothing else (bench_shift.py's bare)
  shift text  paper-61's perturb_text calls alone: work bare does not do (why shift's ratio is what it is)
  eval        `emidbench eval RUN --model tiny-llava` (hf backend, CPU, one process)
              bare: the model's generate calls alone (eval.json timings: generate)
  score       `emidbench score RUN --model tiny-llava`, cold (no cache, no estimator)
              bare: each distinct image and text embedded once with the offline embedder,
              plus one CLUB fit on the shared estimator's pairs (fit_club, nothing else)
  rescore     the same score again: embeddings cached, estimator reused
  +bootstrap  the cached rescore with --bootstrap B; compared with the rescore
  report      `emidbench report RUN`

Targets (issue 18), at 10x: shift/1 <= 1.1 x bare, shift/2 <= 0.65 x bare; score <= 1.5 x
bare; --bootstrap 1000 adds <= 50% to a cached rescore; report <= 10 s; score's peak RSS
grows with the distinct inputs (not scenarios x items). A target missed is shown with the
figures that explain it (the stage's own step timings, CPU time, the machine's load).

--stream Q first streams a folder benchmark of Q questions (20 per image; JPEG photographs,
90% 640x480, 9% 1920x1080, 1% 4200x2800) through shift with three corruptions, and the
same for Q/4 questions: time against bare (the same corruptions, one image at a time) and
whether peak RSS grows with the images (it should not: images are read when needed).

It also measures, back to back, the CLUB fit's cost per optimiser step with OpenMP's
threads spinning while they wait (torch's default) and sleeping (OMP_WAIT_POLICY=PASSIVE,
what emidbench sets): the largest cost of a cold score on a busy machine.
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

MODEL = "tiny-llava"
TIMES = {"default": 1, "large": 10, "xlarge": 100}


# --------------------------------------------------------------------------- child measurements

def child(kind: str, args) -> dict:
    """One measurement in this (fresh) process; returns what the parent prints."""
    t0 = time.perf_counter()
    if kind == "shift":
        from emidbench.shift import run_shift

        bench, suite = benchmark_and_suite(args)
        t0 = time.perf_counter()
        run_shift(bench, suite, Path(args.run), workers=args.workers)
    elif kind == "shift-traced":  # untimed: what Python and numpy allocate (tracemalloc), at the peak and held after
        import tracemalloc

        from emidbench.shift import run_shift

        tracemalloc.start()
        bench, suite = benchmark_and_suite(args)
        loaded = tracemalloc.get_traced_memory()[0]
        run_shift(bench, suite, Path(args.run), workers=args.workers)
        held, peak = tracemalloc.get_traced_memory()
        return {"loaded_mb": loaded / 2**20, "peak_mb": peak / 2**20, "held_mb": held / 2**20}
    elif kind == "shift-bare":
        import numpy as np
        from imagecorruptions import corrupt

        from emidbench.common.images import decode_image
        from emidbench.shift.suites import plan_scenarios

        bench, suite = benchmark_and_suite(args)
        t0 = time.perf_counter()
        jobs = sorted({(p.visual.name, p.visual.severity) for p in plan_scenarios(bench, suite) if p.visual})
        for sample in {s.image_hash: s for s in bench.samples}.values():  # distinct ID images, one at a time
            arr = np.asarray(decode_image(sample.read_image(), "image"))
            for name, severity in jobs:
                corrupt(arr, corruption_name=name, severity=severity)
    elif kind == "shift-text":  # the text perturbations of paper-61 alone (not in bare: the why of a ratio)
        from emidbench.benchmarks import load_benchmark
        from emidbench.common.hashing import derive_seed
        from emidbench.shift.suites import plan_scenarios
        from emidbench.shift.text import perturb_text

        bench = load_benchmark("mini", size=args.size)
        t0 = time.perf_counter()
        calls = 0
        for p in plan_scenarios(bench, "paper-61"):
            if p.text:
                for s in (bench.samples if p.domain is None else bench.domains[p.domain]):
                    perturb_text(s.text, p.text.name, p.text.severity, derive_seed(0, p.name, s.question_id))
                    calls += 1
        return {"seconds": time.perf_counter() - t0, "calls": calls}
    elif kind == "score-bare":
        return score_bare(Path(args.run))
    elif kind == "fit-step":
        return fit_step()
    return {"seconds": time.perf_counter() - t0}


def score_bare(run: Path) -> dict:
    """Each distinct input embedded once, then one CLUB fit on the shared estimator's pairs."""
    import numpy as np

    from emidbench.embedders.offline import OfflineEmbedder
    from emidbench.rundir import RunDir
    from emidbench.rundir.answers import read_answers
    from emidbench.score.club import fit_club

    rd = RunDir(run)
    manifest = rd.read_manifest()
    items = []  # (scenario, question_id, image, question, answer, reference)
    for s in manifest.scenarios:
        answers = read_answers(rd.responses_path(MODEL, s.name))[0]
        for q in rd.read_scenario(s.name):
            a = answers.get(str(q["question_id"]))
            if a is not None:
                items.append((s.name, str(q["question_id"]), q["image"], q["text"], a["text"], q["reference"]))
    emb = OfflineEmbedder()
    t0 = time.perf_counter()
    images = list(dict.fromkeys(it[2] for it in items))
    texts = list(dict.fromkeys(t for it in items for t in it[3:]))
    image_row = {}
    for start in range(0, len(images), 256):
        chunk = images[start:start + 256]
        for name, v in zip(chunk, emb.embed_images([rd.image_path(n).read_bytes() for n in chunk])):
            image_row[name] = v
    text_row = {}
    for start in range(0, len(texts), 256):
        chunk = texts[start:start + 256]
        text_row.update(zip(chunk, emb.embed_texts(chunk)))
    t_embed = time.perf_counter() - t0
    x = np.stack([(image_row[it[2]] + text_row[it[3]]) / 2 for it in items]).astype(np.float32)
    y_ref = np.stack([text_row[it[5]] for it in items]).astype(np.float32)
    y_hat = np.stack([text_row[it[4]] for it in items]).astype(np.float32)
    t1 = time.perf_counter()
    _, info = fit_club(np.concatenate([x, x]), np.concatenate([y_ref, y_hat]))
    t_fit = time.perf_counter() - t1
    return {"seconds": time.perf_counter() - t0, "embed": t_embed, "fit": t_fit, "epochs": info["epochs"],
            "pairs": 2 * len(items), "distinct": len(images) + len(texts), "uses": 4 * len(items)}


def fit_step() -> dict:
    """ms per CLUB optimiser step (256-d, hidden 500, batch 256), 2 threads, this process's
    OpenMP wait policy (set by the parent in the environment)."""
    import torch

    from emidbench.score.club import CLUB

    torch.manual_seed(0)
    club = CLUB(256, 256, 500)
    opt = torch.optim.Adam(club.parameters(), lr=1e-3)
    x, y = torch.randn(4096, 256), torch.randn(4096, 256)

    def steps(k):
        for i in range(k):
            idx = torch.randint(0, 4096, (256,))
            loss = -club.loglik(x[idx], y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()

    steps(5)
    t0, c0 = time.perf_counter(), time.process_time()
    steps(60)
    return {"ms_per_step": (time.perf_counter() - t0) / 60 * 1000, "cpu_ms_per_step": (time.process_time() - c0) / 60
            * 1000, "threads": torch.get_num_threads()}


# --------------------------------------------------------------------------- the parent

def benchmark_and_suite(args):
    """`mini --size SIZE` under paper-61, or (--bench) a folder stream_benchmark wrote, with its suite."""
    from emidbench.benchmarks import load_benchmark

    if args.bench:
        return load_benchmark(args.bench), str(Path(args.bench) / "suite.yaml")
    return load_benchmark("mini", size=args.size), "paper-61"


def env(extra: dict | None = None) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false", "PYTHONHASHSEED": "0", **(extra or {})}


def run_process(cmd: list[str], extra_env: dict | None = None) -> tuple[float, float, float, str]:
    """(wall s, CPU s incl. its children, peak RSS MB of the process itself, stdout)."""
    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env(extra_env), stdout=out, stderr=err)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    err.seek(0)
    stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode not in (0, 1):  # eval exits 1 when some items failed: counted, not fatal
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{stderr[-3000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss / 1024, stdout


def cli(*args, extra_env=None):
    return run_process([sys.executable, "-m", "emidbench", *map(str, args)], extra_env)


def measure(kind: str, extra_env=None, **opts) -> tuple[dict, float, float]:
    argv = [sys.executable, __file__, "--child", kind]
    for k, v in opts.items():
        argv += [f"--{k}", str(v)]
    wall, cpu, rss, stdout = run_process(argv, extra_env)
    return json.loads(stdout.strip().splitlines()[-1]), cpu, rss


class Table:
    """One line per stage: wall time, the bare cost's wall time, their ratio (and the
    ratio of CPU seconds, steadier on a shared machine), the target, peak RSS."""

    def __init__(self):
        self.rows = []

    def add(self, stage, seconds, bare=None, target=None, rss=None, cpu=None, note="", bare_cpu=None):
        ratio = seconds / bare if bare else None
        cpu_ratio = cpu / bare_cpu if (cpu is not None and bare_cpu) else None
        met = "" if target is None else ("yes" if (ratio if bare else seconds) <= target else "NO")
        row = (stage, seconds, bare, ratio, cpu_ratio, target, met, rss, cpu, note)
        self.rows.append(row)
        print(self.line(row), flush=True)

    @staticmethod
    def header() -> str:
        return (f"  {'stage':<26} {'time s':>8} {'bare s':>8} {'ratio':>6} {'CPU r':>6} {'target':>7} {'met':>4} "
                f"{'RSS MB':>7} {'CPU s':>7}  note")

    @staticmethod
    def line(r) -> str:
        stage, seconds, bare, ratio, cpu_ratio, target, met, rss, cpu, note = r

        def f(v, width, digits):
            return f"{v:{width}.{digits}f}" if v is not None else f"{'-':>{width}}"
        return (f"  {stage:<26} {seconds:8.1f} {f(bare, 8, 1)} {f(ratio, 6, 2)} {f(cpu_ratio, 6, 2)} "
                f"{f(target, 7, 2)} {met:>4} {f(rss, 7, 0)} {f(cpu, 7, 1)}  {note}")


def campaign(size: str, args, root: Path) -> None:
    times = TIMES.get(size, "?")
    print(f"\n== mini --size {size} ({times}x the paper's size), load average {os.getloadavg()[0]:.1f} ==")
    print(Table.header())
    t = Table()
    shift_target = {1: 1.1, 2: 0.65} if size == "large" else {}
    bare, bare_cpu, rss = measure("shift-bare", size=size)
    t.add("shift bare (corrupt)", bare["seconds"], rss=rss, cpu=bare_cpu)
    text, text_cpu, _ = measure("shift-text", size=size)
    t.add("shift's text alone", text["seconds"], bare["seconds"], None, None, text_cpu,
          f"{text['calls']} perturb_text calls (imports included): work bare does not do", bare_cpu=bare_cpu)
    run = root / f"run-{size}"
    for w in args.workers:
        shutil.rmtree(run, ignore_errors=True)
        res, cpu, rss = measure("shift", size=size, run=run, workers=w)
        ratio = res["seconds"] / bare["seconds"]
        note = ""
        if w in shift_target and ratio > shift_target[w]:
            note = (f"CPU {cpu:.0f} s against bare's {bare_cpu:.0f} s: the text alone takes {text_cpu:.0f} s CPU "
                    f"({text['calls']} calls), the rest is PNG encoding, storing and the scenario files")
        t.add(f"shift --workers {w}", res["seconds"], bare["seconds"], shift_target.get(w), rss, cpu, note,
              bare_cpu=bare_cpu)

    if args.shift_only:
        print(f"  load average at end {os.getloadavg()[0]:.1f}")
        return
    if args.answers == "tiny-llava":
        wall, cpu, rss, _ = cli("eval", run, "--model", MODEL, "--batch-size", args.batch_size,
                                "--max-new-tokens", args.max_new_tokens)
        timings = json.loads((run / "responses" / MODEL / "eval.json").read_text())["timings"]["steps"]
        t.add("eval (tiny-llava, hf)", wall, timings["generate"], None, rss, cpu,
              f"steps: {', '.join(f'{k} {v:.0f} s' for k, v in timings.items())}")
    else:  # answers written from the references: the score stage's cost does not depend on who answered
        synthesize_answers(run, root / f"answers-{size}")
        wall, cpu, rss, _ = cli("import-responses", root / f"answers-{size}", "--model", MODEL, "--out", run)
        t.add("import-responses", wall, None, None, rss, cpu, "answers synthesized (--answers synthetic)")

    sbare, cpu_b, rss_b = measure("score-bare", run=run)
    t.add("score bare (embed+fit)", sbare["seconds"], None, None, rss_b, cpu_b,
          f"embed {sbare['embed']:.0f} s + fit {sbare['fit']:.0f} s ({sbare['epochs']} epochs, {sbare['pairs']} pairs)")
    wall, cpu, rss, _ = cli("score", run, "--model", MODEL)
    rec = json.loads((run / "scores" / MODEL / "score.json").read_text())
    steps = rec["timings"]["steps"]
    distinct = rec["counts"].get("distinct_embedded", {})
    ratio = wall / sbare["seconds"]
    note = f"steps: {', '.join(f'{k} {v:.0f} s' for k, v in steps.items())}"
    if size == "large" and ratio > 1.5:
        epochs = rec["estimator"].get("fits", [{}])[0].get("epochs") if "fits" in rec["estimator"] else None
        note += f"; fit epochs {epochs} vs bare's {sbare['epochs']}"
    t.add("score (cold)", wall, sbare["seconds"], 1.5 if size == "large" else None, rss, cpu, note, bare_cpu=cpu_b)
    if distinct:
        copies = distinct["uses"] * 256 * 4 / 2**20
        held = (distinct["images"] + distinct["texts"]) * 256 * 4 / 2**20
        print(f"  memory: {distinct['images']} images + {distinct['texts']} texts held ({held:.0f} MB of vectors) "
              f"for {distinct['uses']} uses (per-scenario copies would be {copies:.0f} MB)")
    wall0, cpu0, rss, _ = cli("score", run, "--model", MODEL)
    t.add("rescore (cached)", wall0, None, None, rss, cpu0)
    wall1, cpu, rss, _ = cli("score", run, "--model", MODEL, "--bootstrap", args.bootstrap)
    steps = json.loads((run / "scores" / MODEL / "score.json").read_text())["timings"]["steps"]
    t.add(f"rescore --bootstrap {args.bootstrap}", wall1, wall0, 1.5 if size == "large" else None, rss, cpu,
          f"bootstrap step {steps.get('bootstrap', 0):.1f} s; the rest is the rescore's own", bare_cpu=cpu0)
    wall, cpu, rss, _ = cli("report", run)
    t.add("report", wall, None, 10.0, rss, cpu, "target: seconds, not a ratio")
    print(f"  load average at end {os.getloadavg()[0]:.1f}")


# --------------------------------------------------------------------------- streaming (item 4)

STREAM_CORRUPTIONS = [("gaussian_noise", 3), ("defocus_blur", 3), ("jpeg_compression", 3)]
# (share of the images, width, height): VGA photographs, full HD, and past 4k on the long side
STREAM_SIZES = [(0.90, 640, 480), (0.09, 1920, 1080), (0.01, 4200, 2800)]


def stream_benchmark(root: Path, questions: int, per_image: int = 20) -> dict:
    """A LLaVA-layout folder: `questions` questions, `per_image` per image, JPEG photographs
    (gradients and noise) of the STREAM_SIZES mix; -> what it holds."""
    import io

    import numpy as np
    from PIL import Image

    (root / "images").mkdir(parents=True, exist_ok=True)
    n_images = max(1, questions // per_image)
    # the largest first, at least one of each size; the rest the most common size
    sizes = [(w, h) for share, w, h in reversed(STREAM_SIZES) for _ in range(max(1, round(share * n_images)))]
    sizes = sizes[:n_images] + [STREAM_SIZES[0][1:]] * (n_images - len(sizes))
    qs, ans, encoded, decoded = [], [], 0, 0
    for i, (w, h) in enumerate(sizes):
        rng = np.random.default_rng(i)
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        px = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (w + h)], -1) + rng.normal(0, 20, (h, w, 3))
        buf = io.BytesIO()
        Image.fromarray(np.clip(px, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=90)
        (root / "images" / f"img_{i:05d}.jpg").write_bytes(buf.getvalue())
        encoded += len(buf.getvalue())
        decoded += w * h * 3
    for q in range(questions):
        qs.append(json.dumps({"question_id": q, "image": f"img_{q % n_images:05d}.jpg", "text": f"What is here? ({q})"}))
        ans.append(json.dumps({"question_id": q, "text": "A gradient with noise."}))
    (root / "questions.jsonl").write_text("\n".join(qs) + "\n")
    (root / "answers.jsonl").write_text("\n".join(ans) + "\n")
    (root / "suite.yaml").write_text("scenarios:\n" + "".join(
        f"  - {{name: {n}_{s}, visual: {{name: {n}, severity: {s}}}}}\n" for n, s in STREAM_CORRUPTIONS))
    largest = max(w * h * 3 for w, h in sizes)
    return {"images": n_images, "encoded_mb": encoded / 2**20, "decoded_mb": decoded / 2**20,
            "largest_mb": largest / 2**20, "largest": max(sizes, key=lambda s: s[0] * s[1])}


def streaming(args, root: Path) -> None:
    """The shift stage on a folder benchmark of `--stream` questions, and on a quarter of
    it (the same mix of sizes, the largest image included): peak RSS should not grow with
    the images."""
    print(f"\n== streaming: a folder benchmark, 20 questions per JPEG image "
          f"({', '.join(f'{round(share * 100)}% {w}x{h}' for share, w, h in STREAM_SIZES)}), "
          f"{len(STREAM_CORRUPTIONS)} corruptions; load average {os.getloadavg()[0]:.1f} ==")
    print(Table.header())
    t = Table()
    rss_at, seconds, traced = {}, {}, {}
    for questions in (args.stream // 4, args.stream):
        bench = root / f"stream-{questions}"
        shutil.rmtree(bench, ignore_errors=True)
        info = stream_benchmark(bench, questions)
        print(f"  {questions} questions, {info['images']} images: {info['encoded_mb']:.0f} MB as JPEG, "
              f"{info['decoded_mb']:.0f} MB as pixels; the largest ({info['largest'][0]}x{info['largest'][1]}) "
              f"{info['largest_mb']:.0f} MB as pixels")
        bare, bare_cpu, bare_rss = measure("shift-bare", bench=bench)
        t.add(f"bare, {questions} q", bare["seconds"], rss=bare_rss, cpu=bare_cpu, note="one image at a time")
        for w in (args.workers if questions == args.stream else [1]):
            run = root / "stream-run"
            shutil.rmtree(run, ignore_errors=True)
            res, cpu, rss = measure("shift", bench=bench, run=run, workers=w)
            rss_at[questions, w], seconds[questions, w] = (rss, info["encoded_mb"]), res["seconds"]
            t.add(f"shift, {questions} q, w {w}", res["seconds"], bare["seconds"], None, rss, cpu,
                  f"peak RSS {rss - bare_rss:+.0f} MB over bare's", bare_cpu=bare_cpu)
        shutil.rmtree(root / "stream-run", ignore_errors=True)
        traced[questions], _, _ = measure("shift-traced", bench=bench, run=root / "stream-run", workers=1)
        traced[questions]["jpeg_mb"] = info["encoded_mb"]
    print("  memory (tracemalloc, a separate untimed run with 1 worker; RSS varies by +-100 MB with when the\n"
          "  allocator returns the largest image's transient arrays):")
    for questions, m in traced.items():
        print(f"    {questions:>6} questions ({m['jpeg_mb']:.0f} MB of JPEG): {m['loaded_mb']:.1f} MB after loading, "
              f"peak {m['peak_mb']:.0f} MB, {m['held_mb']:.1f} MB held after the stage")
    small, large = rss_at[args.stream // 4, 1], rss_at[args.stream, 1]
    print(f"  peak RSS, 1 worker: {small[0]:.0f} MB at {args.stream // 4} questions, {large[0]:.0f} MB at "
          f"{args.stream}")
    full = {w: s for (q, w), s in seconds.items() if q == args.stream}
    if 1 in full and len(full) > 1:
        print("  speed-up: " + ", ".join(f"--workers {w} {full[1] / s:.2f}x" for w, s in full.items() if w != 1))


def synthesize_answers(run: Path, out: Path) -> None:
    """LLaVA answer files: each reference with a few words dropped (deterministic)."""
    import hashlib

    from emidbench.rundir import RunDir

    rd = RunDir(run)
    out.mkdir(parents=True, exist_ok=True)
    for s in rd.read_manifest().scenarios:
        lines = []
        for q in rd.read_scenario(s.name):
            h = hashlib.sha256(f"{s.name}/{q['question_id']}".encode()).digest()
            words = [w for i, w in enumerate(q["reference"].split()) if h[i % 32] % 5]
            lines.append(json.dumps({"question_id": q["question_id"], "prompt": q["text"], "text": " ".join(words),
                                     "model_id": MODEL}))
        (out / f"{s.name}_{MODEL}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--size", help=argparse.SUPPRESS)
    ap.add_argument("--run", help=argparse.SUPPRESS)
    ap.add_argument("--sizes", nargs="*", default=["large", "xlarge"],
                    help="mini sizes (large = 10x, xlarge = 100x); none: only the OpenMP check")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="shift --workers to measure")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--answers", choices=("tiny-llava", "synthetic"), default="tiny-llava",
                    help="eval with the bundled tiny-llava, or synthesize answers (skips eval)")
    ap.add_argument("--skip-fit-check", action="store_true", help="skip the OpenMP wait-policy measurement")
    ap.add_argument("--shift-only", action="store_true", help="measure the shift stage only (eval and a cold score "
                    "at 100x take hours on a CPU)")
    ap.add_argument("--stream", type=int, default=0, metavar="QUESTIONS",
                    help="also stream a folder benchmark of this many questions (20 per image, some past 4k) "
                         "through shift: time and peak RSS against the images' size (e.g. 10000)")
    ap.add_argument("--bench", help=argparse.SUPPRESS)
    ap.add_argument("--keep", type=Path, help="keep the run directories here (default: a temporary folder)")
    args = ap.parse_args()
    if args.child:
        args.workers = args.workers[0]
        print(json.dumps(child(args.child, args)))
        return

    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; one fresh process per stage")
    if not args.skip_fit_check:
        print("CLUB fit, ms per optimiser step (2 threads), spinning and sleeping OpenMP threads alternated:")
        got = {"ACTIVE": [], "PASSIVE": []}
        for policy in ("ACTIVE", "PASSIVE") * 3:
            res, _, _ = measure("fit-step", {"OMP_WAIT_POLICY": policy})
            got[policy].append((res["ms_per_step"], res["cpu_ms_per_step"]))
            print(f"  OMP_WAIT_POLICY={policy:<8} {res['ms_per_step']:7.1f} ms wall {res['cpu_ms_per_step']:7.1f} ms CPU"
                  f"  (load average {os.getloadavg()[0]:.1f})", flush=True)
        med = {k: [sorted(x[i] for x in v)[len(v) // 2] for i in (0, 1)] for k, v in got.items()}
        print(f"  median: spinning {med['ACTIVE'][0]:.1f} ms wall / {med['ACTIVE'][1]:.1f} ms CPU, sleeping "
              f"{med['PASSIVE'][0]:.1f} / {med['PASSIVE'][1]:.1f}: {med['ACTIVE'][0] / med['PASSIVE'][0]:.1f}x "
              "the wall time per step")
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_scale_"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        if args.stream:
            streaming(args, root)
        for size in args.sizes:
            campaign(size, args, root)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
