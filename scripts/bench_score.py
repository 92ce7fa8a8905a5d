"""Benchmark `emidbench score` against the reference procedure on the paper's synthetic suite.

    .venv/bin/python scripts/bench_score.py [--workdir DIR] [--reference-scenarios 3]

What it builds (nothing is downloaded):
  * full-size, randomly initialised encoders of the paper's architectures, saved like hub
    checkpoints: CLIP ViT-B/32 vision (CLIPVisionConfig() defaults, 224 px, patch 32,
    12 x 768) with CLIP's image preprocessing, and XLM-R base (12 x 768, 250002-entry
    vocabulary) with a word-level tokenizer of 250002 entries built offline (XLM-R's
    special-token layout) — the same compute as the real checkpoints;
  * a run directory with the 35 scenarios of the synthetic suite at LLaVA-Bench size:
    30 images (640 x 480), 90 questions (conv / detail / complex), references and model
    answers of ~50-100 words; 7 visual variants (none, blur 1/3/5, a frost-like overlay
    1/3/5) x 5 text variants (none, synonym swaps 4/7, keyboard typos 1/3); every
    scenario's answers are distinct, as a model's are.

What it times:
  * ours: `run_score(..., embedder="paper", estimator=CLUB)` from an empty cache —
    each distinct image and text embedded once, texts through the embedding layer only;
    then the same call again (warm cache);
  * the reference procedure (Oh et al.'s main.py, restated): for every scenario, embed
    everything afresh — CLIP on its 90 images, the full 12-layer XLM-R forward with
    output_hidden_states on the questions, the answers and the references (padding to
    the longest text, as main.py does; --reference-padding max_length pads to 512),
    reading hidden_states[0] — then CLUB with the published O(n^2 d) formula and the
    JSDs by eigendecomposition of the d x d covariances. Running it on all 35
    scenarios takes about an hour on 2 cores, so it is timed on --reference-scenarios
    of them (the ID set first) and extrapolated linearly to 35 (said in the output).

What it checks: per scenario, EMI, EMID, the bound and its four JSD terms from the two
procedures agree within 1e-5 (the reference formulas are evaluated in float64 on the
float32 network outputs; the published script's all-float32 numbers are printed too,
for information: float32 eigenvalue noise alone moves a JSD by ~1e-5).
Exit code 1 when they do not agree.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from photos import photo_image  # noqa: E402

V_SHIFTS = ["", "_defocus_blur_1", "_defocus_blur_3", "_defocus_blur_5", "_frost_1", "_frost_3", "_frost_5"]
T_SHIFTS = ["", "_sr_4", "_sr_7", "_KeyboardAug_1", "_KeyboardAug_3"]
ID = "llava_bench_coco"
CATS = ("conv", "detail", "complex")
TOL = 1e-5
VOCAB_SIZE = 250002


# --------------------------------------------------------------------------- models

def build_encoders(root: Path, words: list[str], seed: int = 0) -> tuple[Path, Path]:
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModel, XLMRobertaConfig, XLMRobertaModel

    from emidbench.assets import clip_image_processor
    from emidbench.assets.mini_encoders import SPECIALS, xlmr_word_tokenizer

    vision_dir, text_dir = root / "clip-vit-b32-random", root / "xlm-roberta-base-random"
    torch.manual_seed(seed)
    if not (vision_dir / "config.json").exists():
        CLIPVisionModel(CLIPVisionConfig()).save_pretrained(vision_dir)  # defaults = ViT-B/32
        clip_image_processor().save_pretrained(vision_dir)  # defaults = CLIP's 224-px preprocessing
    if not (text_dir / "config.json").exists():
        vocab = list(dict.fromkeys(w for w in words if w not in SPECIALS))
        vocab += [f"tok{i}" for i in range(VOCAB_SIZE - 1 - len(SPECIALS) - len(vocab))] + ["<mask>"]
        tok = xlmr_word_tokenizer(vocab, mask_token="<mask>")
        config = XLMRobertaConfig(vocab_size=VOCAB_SIZE, max_position_embeddings=514, type_vocab_size=1,
                                  layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2)
        XLMRobertaModel(config, add_pooling_layer=False).save_pretrained(text_dir)
        tok.save_pretrained(text_dir)
    return vision_dir, text_dir


# --------------------------------------------------------------------------- data

def make_words(rng: random.Random, n: int = 3000) -> list[str]:
    syll = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "pe", "da", "go", "fu", "ri", "zo", "be", "an", "el", "or"]
    words = set()
    while len(words) < n:
        words.add("".join(rng.choice(syll) for _ in range(rng.randint(1, 4))))
    common = "the a an is are of in on with and to it this that there image shows picture what how why".split()
    return common + sorted(words)


def sentence(rng: random.Random, words: list[str], lo: int, hi: int) -> str:
    n = rng.randint(lo, hi)
    out = [rng.choice(words) for _ in range(n)]
    for i in range(9, n, rng.randint(9, 14)):
        out[i] += "."
    return " ".join(out).capitalize() + "."


def visual_shift(img, shift: str, frost_texture: np.ndarray):
    from PIL import Image, ImageFilter

    if not shift:
        return img
    level = int(shift.rsplit("_", 1)[1])
    if "defocus" in shift:
        return img.filter(ImageFilter.GaussianBlur(level * 1.5))
    arr = np.asarray(img, dtype=np.float64)
    alpha = 0.12 * level
    return Image.fromarray(np.clip((1 - alpha) * arr + alpha * frost_texture, 0, 255).astype(np.uint8))


def text_shift(text: str, shift: str, rng: random.Random, words: list[str]) -> str:
    if not shift:
        return text
    level = int(shift.rsplit("_", 1)[1])
    toks = text.split()
    k = max(1, int(0.05 * level * len(toks)))
    for i in rng.sample(range(len(toks)), min(k, len(toks))):
        if "sr" in shift:
            toks[i] = rng.choice(words)
        elif len(toks[i]) > 3:
            j = rng.randrange(len(toks[i]) - 1)
            toks[i] = toks[i][:j] + toks[i][j + 1] + toks[i][j] + toks[i][j + 2:]
    return " ".join(toks)


def build_run(run: Path, words: list[str], n_images: int = 30, model: str = "bench-model") -> list[str]:
    from emidbench.rundir import RunDir
    from emidbench.rundir.manifest import Manifest, ScenarioEntry, ShiftSpec

    rd = RunDir(run)
    rng = random.Random(0)
    base = [photo_image(i) for i in range(n_images)]
    frost = np.asarray(photo_image(10_000).resize((640, 480)), dtype=np.float64) * 0.3 + 180
    questions = [(3 * i + j, i, CATS[j], sentence(rng, words, 6, 14).rstrip(".") + "?")
                 for i in range(n_images) for j in range(3)]
    references = {qid: sentence(rng, words, 50, 100) for qid, *_ in questions}
    names, entries = [], []
    for v in V_SHIFTS:
        images = {}
        for i, img in enumerate(base):
            buf = io.BytesIO()
            visual_shift(img, v, frost).save(buf, format="PNG", compress_level=1)
            images[i] = rd.put_image(buf.getvalue(), "png")
        for t in T_SHIFTS:
            name = f"{ID}{v}{t}"
            trng = random.Random(f"text{t}")
            recs, answers = [], []
            arng = random.Random(name)
            for qid, i, cat, q in questions:
                text = text_shift(q, t, trng, words)
                recs.append({"question_id": qid, "image": images[i], "text": text, "category": cat,
                             "reference": references[qid], "context": f"Synthetic image {i}."})
                answers.append({"question_id": qid, "prompt": text, "text": sentence(arng, words, 50, 100),
                                "answer_id": f"{name}-{qid}", "model_id": model, "metadata": {"scenario": name}})
            rd.write_scenario(name, recs)
            path = rd.responses_path(model, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(a) + "\n" for a in answers), encoding="utf-8")
            vs = ShiftSpec(v.strip("_").rsplit("_", 1)[0], int(v.rsplit("_", 1)[1])) if v else None
            ts = ShiftSpec(t.strip("_").rsplit("_", 1)[0], int(t.rsplit("_", 1)[1])) if t else None
            modality = "joint" if v and t else ("visual" if v else ("text" if t else "none"))
            entries.append(ScenarioEntry(name, "synthetic" if (v or t) else "id", modality, vs, ts, len(recs),
                                         f"{name}.jsonl"))
            names.append(name)
    rd.write_manifest(Manifest("paper-synthetic-bench", "synthetic", 0, ID, entries))
    return names


# --------------------------------------------------------------------------- the reference procedure

class Reference:
    """Oh et al.'s main.py procedure, restated: embed each scenario afresh with the full
    models, then the published CLUB and JSD formulas."""

    def __init__(self, vision_dir: Path, text_dir: Path, club_path: Path, padding: str):
        import torch
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer, CLIPVisionModel
        from transformers.utils import logging as hf_logging

        from emidbench.score.club import load_club

        hf_logging.set_verbosity_error()
        self.processor = AutoImageProcessor.from_pretrained(vision_dir)
        self.vision = CLIPVisionModel.from_pretrained(vision_dir, dtype=torch.float32).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(text_dir)
        self.text = AutoModel.from_pretrained(text_dir, dtype=torch.float32).eval()
        self.club = load_club(club_path).float().eval()
        self.padding = padding

    def embed(self, rd, records, answers):
        import torch
        import torch.nn.functional as F
        from PIL import Image

        imgs = [Image.open(rd.image_path(r["image"])).convert("RGB") for r in records]
        with torch.inference_mode():
            pix = self.processor(images=imgs, return_tensors="pt")["pixel_values"]
            z_v = self.vision(pixel_values=pix, output_hidden_states=True).hidden_states[-1][:, 1:, :].mean(dim=1)
            out = [F.normalize(z_v.float(), p=2, dim=-1)]
            for texts in ([r["text"] for r in records], answers, [r["reference"] for r in records]):
                enc = self.tokenizer(texts, return_tensors="pt", truncation=True, max_length=512,
                                     padding=True if self.padding == "longest" else "max_length")
                mask = enc["attention_mask"].unsqueeze(-1)
                h = self.text(**enc, output_hidden_states=True).hidden_states[0] * mask
                z = h[:, 1:, :].sum(dim=1) / mask[:, 1:, :].sum(dim=1)
                out.append(F.normalize(z, p=2, dim=-1))
        return out  # z_v, z_t, z_yhat, z_y (float32)

    def club_value(self, x, y, dtype):
        import torch

        with torch.inference_mode():
            mu, logvar = self.club.p_mu(x), self.club.p_logvar(x)  # the network in float32, as published
            mu, logvar, y = mu.to(dtype), logvar.to(dtype), y.to(dtype)
            positive = -(mu - y) ** 2 / 2.0 / logvar.exp()
            negative = -((y.unsqueeze(0) - mu.unsqueeze(1)) ** 2).mean(dim=1) / 2.0 / logvar.exp()
            return float((positive.sum(dim=-1) - negative.sum(dim=-1)).mean())

    def emi(self, z, dtype):
        x = (z[0] + z[1]) * 0.5
        return self.club_value(x, z[2], dtype) - self.club_value(x, z[3], dtype)

    @staticmethod
    def jsd(p, q, dtype):
        import torch

        def entropy(c):
            ev = torch.linalg.eigvalsh(c)
            ev = ev[ev > 0]
            ev = ev / ev.sum()
            return -(ev * torch.log(ev)).sum()

        p, q = p.to(dtype), q.to(dtype)
        cp, cq = p.T @ p, q.T @ q
        return float(entropy((cp + cq) / 2) - 0.5 * (entropy(cp) + entropy(cq)))

    def terms(self, zp, zq, dtype):
        jv, jt = self.jsd(zp[0], zq[0], dtype), self.jsd(zp[1], zq[1], dtype)
        jpy, jqy = self.jsd(zp[2], zp[3], dtype), self.jsd(zq[2], zq[3], dtype)
        # max(0, .): JSD(P, P) comes out as +-1e-16
        ub = sum(max(j, 0.0) ** e for j, e in ((jv, 0.5), (jt, 0.5), (jpy, 0.25), (jqy, 0.25)))
        return {"jsd_v": jv, "jsd_t": jt, "jsd_y_id": jpy, "jsd_y_ood": jqy, "emid_ub": ub}


# --------------------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, default=None, help="keep models and the run here (default: a temp dir)")
    ap.add_argument("--reference-scenarios", type=int, default=3, help="scenarios to time the reference on")
    ap.add_argument("--reference-padding", choices=["longest", "max_length"], default="longest")
    ap.add_argument("--images", type=int, default=30)
    args = ap.parse_args()

    import torch

    from emidbench.common.io import read_jsonl
    from emidbench.rundir import RunDir
    from emidbench.score import run_score
    from emidbench.score.club import CLUB, save_club

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-score-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"workdir {work}; torch threads {torch.get_num_threads()}; cores {os.cpu_count()}; "
          f"load average {os.getloadavg()[0]:.2f} (a shared machine: timings are indicative)")
    t = time.perf_counter()
    words = make_words(random.Random(1))
    vision_dir, text_dir = build_encoders(work, words)
    published = REPO.parent / "shared" / "reference" / "mllmshift-emi" / "CLUB_global.pt"
    if published.is_file():
        club_path, club_note = published, "the published CLUB_global.pt"
    else:
        torch.manual_seed(0)
        club_path, club_note = work / "club-random.pt", "a randomly initialised 768-d CLUB (h = 500)"
        save_club(CLUB(768, 768, 500), club_path)
    run = work / "run"
    if run.exists():
        shutil.rmtree(run)
    names = build_run(run, words, args.images)
    print(f"built encoders and a {len(names)}-scenario run ({args.images} images, {3 * args.images} questions) "
          f"in {time.perf_counter() - t:.0f} s (not timed); estimator: {club_note}")

    # ---- ours, from an empty cache, then warm
    t = time.perf_counter()
    metrics = run_score(run, "bench-model", embedder="paper", vision_encoder=str(vision_dir),
                        text_encoder=str(text_dir), estimator=str(club_path))
    ours_cold = time.perf_counter() - t
    t = time.perf_counter()
    run_score(run, "bench-model", embedder="paper", vision_encoder=str(vision_dir), text_encoder=str(text_dir),
              estimator=str(club_path))
    ours_warm = time.perf_counter() - t
    import csv

    with open(metrics, newline="") as f:
        ours = {r["scenario"]: r for r in csv.DictReader(f)}
    print(f"ours: {ours_cold:.1f} s for {len(names)} scenarios from an empty cache "
          f"({len(V_SHIFTS) * args.images} distinct images, {len(names) * 3 * args.images} answers); "
          f"{ours_warm:.1f} s again with the cache")

    # ---- the reference, on a subset, extrapolated
    rd = RunDir(run)
    subset = [ID] + [n for n in (f"{ID}_defocus_blur_5_KeyboardAug_3", f"{ID}_frost_3_sr_4", f"{ID}_frost_5",
                                 f"{ID}_sr_7") if n in names][:max(0, args.reference_scenarios - 1)]
    t = time.perf_counter()
    ref = Reference(vision_dir, text_dir, club_path, args.reference_padding)
    load_time = time.perf_counter() - t
    per, results, emb_id = [], {}, None
    for name in subset:
        t = time.perf_counter()
        records = rd.read_scenario(name)
        answers = {a["question_id"]: a["text"] for a in read_jsonl(rd.responses_path("bench-model", name))}
        z = ref.embed(rd, records, [answers[r["question_id"]] for r in records])
        emb_id = z if name == ID else emb_id
        out = {}
        for label, dtype in (("f64", torch.float64), ("f32", torch.float32)):
            emi = ref.emi(z, dtype)
            emi_id = emi if name == ID else results[ID][label]["emi"]
            out[label] = {"emi": emi, "emid": emi_id - emi, **ref.terms(emb_id, z, dtype)}
        results[name] = out
        per.append(time.perf_counter() - t)
        print(f"  reference {name}: {per[-1]:.1f} s")
    per_scenario = float(np.mean(per))
    ref_total = load_time + per_scenario * len(names)
    print(f"reference: {per_scenario:.1f} s per scenario (mean of {len(per)}: {', '.join(f'{p:.0f}' for p in per)}),"
          f" + {load_time:.1f} s loading; extrapolated linearly to {len(names)} scenarios: {ref_total:.0f} s "
          f"(padding: {args.reference_padding})")
    print(f"ratio: {ref_total / ours_cold:.1f}x from an empty cache (target >= 50x); "
          f"{ref_total / ours_warm:.0f}x with a warm cache")

    # ---- agreement
    worst, worst32 = 0.0, 0.0
    for name in subset:
        for col in ("emi", "emid", "emid_ub", "jsd_v", "jsd_t", "jsd_y_id", "jsd_y_ood"):
            mine = float(ours[name][col])
            worst = max(worst, abs(mine - results[name]["f64"][col]))
            if not math.isnan(results[name]["f32"][col]):
                worst32 = max(worst32, abs(mine - results[name]["f32"][col]))
        print(f"  {name}: emi {float(ours[name]['emi']):.6f} vs {results[name]['f64']['emi']:.6f}, "
              f"emid {float(ours[name]['emid']):.6f} vs {results[name]['f64']['emid']:.6f}, "
              f"bound {float(ours[name]['emid_ub']):.6f} vs {results[name]['f64']['emid_ub']:.6f}")
    ok = worst <= TOL
    print(f"agreement on {len(subset)} scenarios (EMI, EMID, bound, 4 JSDs): max |diff| {worst:.2e} "
          f"({'OK' if ok else 'FAIL'}, tolerance {TOL:g}); the published all-float32 arithmetic differs by "
          f"up to {worst32:.2e}")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
