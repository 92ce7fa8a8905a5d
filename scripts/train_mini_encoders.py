#!/usr/bin/env python
"""Train the bundled mini-clip / mini-xlmr encoder pair: the offline demo's embedder.

    python scripts/train_mini_encoders.py [--steps N] [--seed S] [--out DIR]

The paper's CLIP and XLM-R cannot be downloaded here, and a pixel-statistics proxy sees
backgrounds, not objects, and no language in common between a question and its
translation. These two toy encoders are trained CLIP-style on the `mini` world — both
visual domains (plain and photograph backgrounds), questions in all 7 languages — from
a random stream disjoint from the benchmark's, with two contrastive (InfoNCE) terms:
  image        <-> its scene description (what CLIP learns);
  image+query  <-> the reference answer (answers that fit a query lie near it; a
                   question in any language must pick the same answer, which is what
                   aligns the languages);
and 15% of the words of queries and answers replaced by <unk> while training, so words
the world does not know (typos, synonyms) act as noise rather than as a meaning.
An explicit translation <-> English term was tried and dropped: it made translations
near-identical to English, so the EMID bound's question term no longer saw the shift.
They then embed through the `paper` embedder's own code path (patch mean of the vision
tower's last hidden state; masked mean of the text model's embedding layer), so the
demo exercises the paper's pooling exactly; only the checkpoints are toys. Model cards
(README.md) are written beside the weights.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emidbench.assets import ASSETS  # noqa: E402
from emidbench.assets.mini_encoders import (  # noqa: E402
    build_image_processor,
    build_text_model,
    build_tokenizer,
    build_vision_model,
    vocabulary,
)
from emidbench.benchmarks import mini  # noqa: E402
from emidbench.shift.translate import SUFFIX  # noqa: E402

KINDS = ("color", "count", "detail", "position")


def make_pool(rng: np.random.Generator, n: int):
    """n (image, description, question in some language, its English version, answer) examples,
    half of each visual domain."""
    images, descriptions, questions, english, answers = [], [], [], [], []
    for i in range(n):
        scene = mini.random_scene(rng, "mini" if i % 2 == 0 else "mini_wild")
        images.append(np.asarray(mini.render(scene, rng), dtype=np.uint8))
        descriptions.append(mini.question("detail", scene, None)[1])
        kind = str(rng.choice(KINDS))
        arg = None
        if kind == "color":
            arg = str(rng.choice([o.shape for o in scene.objects]))
        elif kind == "position":
            arg = str(rng.choice([o.position for o in scene.objects]))
        q, a = mini.question(kind, scene, arg)
        language = str(rng.choice(mini.LANGUAGES))
        questions.append(q if language == "English" else mini.translate(kind, arg, language) + SUFFIX)
        english.append(q)
        answers.append(a)
    return np.stack(images), descriptions, questions, english, answers


class Encoders(torch.nn.Module):
    def __init__(self, vision, text, tokenizer, processor):
        super().__init__()
        self.vision, self.text, self.tokenizer = vision, text, tokenizer
        self.register_buffer("mean", torch.tensor(processor.image_mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(processor.image_std).view(1, 3, 1, 1))
        self.logit_scale = torch.nn.Parameter(torch.tensor(np.log(1 / 0.07), dtype=torch.float32))

    def images(self, uint8: torch.Tensor) -> torch.Tensor:
        """As the paper embedder: processor normalisation, last hidden state, patch mean."""
        pixels = (uint8.permute(0, 3, 1, 2).float() / 255.0 - self.mean) / self.std
        hs = self.vision(pixel_values=pixels, output_hidden_states=True).hidden_states[-1]
        return F.normalize(hs[:, 1:, :].mean(1), dim=-1)

    def texts(self, texts: list[str], unk_p: float = 0.0, generator=None) -> torch.Tensor:
        """As the paper embedder: embedding-layer output, masked mean without the BOS.
        unk_p: share of word tokens replaced by <unk> (training only: words the world
        does not know — typos, synonyms — then weigh like noise, not like a new meaning)."""
        enc = self.tokenizer(texts, padding=True, return_tensors="pt")
        ids = enc["input_ids"]
        if unk_p > 0:
            words = ids > 3  # not <s>, <pad>, </s>, <unk>
            drop = (torch.rand(ids.shape, generator=generator) < unk_p) & words
            ids = ids.masked_fill(drop, self.tokenizer.unk_token_id)
        h = self.text.embeddings(input_ids=ids)
        mask = enc["attention_mask"].unsqueeze(-1).float()
        return F.normalize((h * mask)[:, 1:].sum(1) / mask[:, 1:].sum(1), dim=-1)

    def contrast(self, a: torch.Tensor, b: torch.Tensor, keys: list[str]) -> torch.Tensor:
        """Symmetric InfoNCE; rows with equal keys are all positives (no false negatives)."""
        same = torch.tensor([[x == y for y in keys] for x in keys], dtype=torch.float32)
        target = same / same.sum(1, keepdim=True)
        logits = self.logit_scale.exp().clamp(max=100) * a @ b.T
        return (torch.sum(-target * F.log_softmax(logits, 1), 1).mean()
                + torch.sum(-target * F.log_softmax(logits.T, 1), 1).mean()) / 2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--pool", type=int, default=20000)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--unk-p", type=float, default=0.15)
    ap.add_argument("--out", type=Path, default=ASSETS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng([args.seed, 3])  # stream 3: never the benchmark's (1) or tiny-llava's

    start = time.time()
    tokenizer = build_tokenizer(vocabulary())
    processor = build_image_processor()
    model = Encoders(build_vision_model(args.seed), build_text_model(tokenizer, args.seed), tokenizer, processor)
    images, descriptions, questions, english, answers = make_pool(rng, args.pool)
    images = torch.from_numpy(images)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.1)
    order = torch.randperm(args.pool, generator=torch.Generator().manual_seed(args.seed))
    pos = 0
    noise = torch.Generator().manual_seed(args.seed + 1)
    model.train()
    for step in range(1, args.steps + 1):
        if pos + args.batch_size > args.pool:
            order, pos = torch.randperm(args.pool, generator=torch.Generator().manual_seed(args.seed + step)), 0
        idx = order[pos:pos + args.batch_size].tolist()
        pos += args.batch_size
        zv = model.images(images[idx])
        zd = model.texts([descriptions[i] for i in idx])
        zq = model.texts([questions[i] for i in idx], args.unk_p, noise)
        za = model.texts([answers[i] for i in idx], args.unk_p, noise)
        loss = (model.contrast(zv, zd, [descriptions[i] for i in idx])
                + model.contrast(F.normalize(zv + zq, dim=-1), za, [answers[i] for i in idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == 1:
            print(f"step {step}/{args.steps} loss {loss.item():.3f} ({time.time() - start:.0f} s)", flush=True)
    seconds = time.time() - start

    model.eval()
    with torch.no_grad():
        check = make_pool(np.random.default_rng([args.seed, 4]), 512)
        zv, zd = model.images(torch.from_numpy(check[0])), model.texts(check[1])
        retrieval = float((zv @ zd.T).argmax(1).eq(torch.arange(512)).float().mean())
        same = torch.tensor([[a == b for b in check[3]] for a in check[3]])
        translation = float(same[torch.arange(512), (model.texts(check[2]) @ model.texts(check[3]).T).argmax(1)].float().mean())
    record = {"seed": args.seed, "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "pool": args.pool,
              "unk_p": args.unk_p,
              "train_seconds": round(seconds), "threads": args.threads,
              "image_to_description_top1": round(retrieval, 3), "translation_top1": round(translation, 3)}
    print(json.dumps(record))
    save(model, tokenizer, processor, args.out, record)


def save(model, tokenizer, processor, out: Path, record: dict) -> None:
    vision_dir, text_dir = out / "mini-clip", out / "mini-xlmr"
    model.vision.save_pretrained(vision_dir)
    processor.save_pretrained(vision_dir)
    model.text.save_pretrained(text_dir)
    tokenizer.save_pretrained(text_dir)
    recipe = (f"Trained together by `scripts/train_mini_encoders.py --seed {record['seed']} --steps {record['steps']}` "
              f"(AdamW, one-cycle lr {record['lr']}, batch {record['batch_size']}, a pool of {record['pool']} "
              f"examples from the `mini` world's two visual domains, questions in its 7 languages; "
              f"{record['train_seconds']} s on {record['threads']} CPU threads), with two InfoNCE terms: "
              "image <-> scene description, image + question <-> reference answer; "
              f"{record['unk_p']:.0%} of query and answer words replaced by <unk> while training.\n\n"
              f"Held-out checks: image -> description top-1 {record['image_to_description_top1']:.1%}; "
              f"translated question -> English question top-1 {record['translation_top1']:.1%}.\n\n"
              "**A toy, for emidbench's offline demo. Its EMI/EMID numbers are not comparable with the "
              "paper's (CLIP ViT-B/32 + XLM-R base).**\n")
    (vision_dir / "README.md").write_text(
        "# mini-clip (emidbench's bundled demo image encoder)\n\nA 2-layer `CLIPVisionModel` (width 128, 64x64 "
        "input, 16-pixel patches), the image half of the offline demo's embedder; the text half is `mini-xlmr`. "
        "Use: `emidbench score RUN --model M --embedder paper --vision-encoder mini-clip --text-encoder mini-xlmr`."
        "\n\n" + recipe, encoding="utf-8")
    (text_dir / "README.md").write_text(
        "# mini-xlmr (emidbench's bundled demo text encoder)\n\nAn `XLMRobertaModel` (width 128) whose embedding "
        "layer is the text half of the offline demo's embedder (the paper reads XLM-R's embedding layer, "
        "hidden_states[0]); word-level vocabulary of the `mini` world in 7 languages, position embeddings zero. "
        "Its transformer layer is untrained and never run by emidbench.\n\n" + recipe, encoding="utf-8")
    (vision_dir / "training.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
