"""A short trial: can a tiny LLaVA trained on multi-image episodes learn to use in-context
examples at all? (issue 16; the answer is reported in the README, "Domain suites").

Each episode is the ICL prompt the hf backend renders for tiny-llava's chat template: K=3
examples (one per shape, in random order: image, question, answer) as earlier turns, then
a query image. The shapes' names are permuted per episode (a random mapping from the
drawn shape to the answer word), so only the examples tell which word answers the query:
without using them a model scores 1/3 at best; a model that uses them approaches 100%.
Loss on every assistant answer (the second and third examples' answers are already
constrained by the earlier ones). Reported: held-out accuracy on 200 episodes of unseen
images (the argmax over the three answer words after the final "ASSISTANT:") as training
goes on. Images are rendered and preprocessed once (a pool per shape), and the prompt is
tokenised once: every episode has the same layout, only answer words and images change.

    nice -n 19 python scripts/trial_icl_episodes.py --minutes 60 --cpu-minutes 30

Uses the bundled builders (emidbench/assets/tiny_llava.py) and the mini-domains renderer;
writes nothing but its log to stdout.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from emidbench.assets import tiny_llava
from emidbench.benchmarks.mini import COLORS, SHAPES
from emidbench.benchmarks.mini_domains import render

QUESTION = "what is in the image ?"


def image_pool(rng: np.random.Generator, processor, per_shape: int, style: str = "plain"):
    """{shape: pixel_values [per_shape, 3, H, W]}: images rendered and preprocessed once."""
    out = {}
    for shape in SHAPES:
        images = [render(style, shape, str(rng.choice(list(COLORS))), rng) for _ in range(per_shape)]
        out[shape] = processor.image_processor(images, return_tensors="pt")["pixel_values"]
    return out


class Episodes:
    """Batches of episodes as model inputs. Every episode has the same token layout (three
    examples and a query, one answer word each), so the prompt is tokenised once through
    the processor and only the answer words and the images change."""

    def __init__(self, processor, tok, pool: dict):
        self.pool = pool
        text = "".join(f"USER: <image>\n{QUESTION} ASSISTANT: circle</s>" for _ in range(4))
        dummy = [pool["circle"][0]] * 4
        enc = processor(images=[[_to_pil(d) for d in dummy]], text=[text], return_tensors="pt")
        self.ids = enc["input_ids"][0]
        colon, assistant = tok.convert_tokens_to_ids(":"), tok.convert_tokens_to_ids("assistant")
        self.answer_at = [i for i in range(2, len(self.ids)) if self.ids[i - 1] == colon and
                          self.ids[i - 2] == assistant]
        assert len(self.answer_at) == 4, self.answer_at
        self.word = {s: tok.convert_tokens_to_ids(s) for s in SHAPES}

    def batch(self, rng: np.random.Generator, n: int):
        ids = self.ids.repeat(n, 1)
        pixels, answers = [], []
        for b in range(n):
            mapping = dict(zip(SHAPES, (SHAPES[i] for i in rng.permutation(3))))  # this episode's names
            order = [SHAPES[i] for i in rng.permutation(3)] + [SHAPES[int(rng.integers(3))]]
            for pos, shape in zip(self.answer_at, order):
                ids[b, pos] = self.word[mapping[shape]]
                pixels.append(self.pool[shape][int(rng.integers(len(self.pool[shape])))])
            answers.append(mapping[order[-1]])
        labels = torch.full_like(ids, -100)
        labels[:, self.answer_at] = ids[:, self.answer_at]
        return ids, torch.stack(pixels), labels, answers


def _to_pil(pixel_values):
    from PIL import Image

    arr = pixel_values.permute(1, 2, 0).numpy()
    arr = (arr - arr.min()) / max(1e-6, float(arr.max() - arr.min())) * 255
    return Image.fromarray(arr.astype(np.uint8))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="wall-clock budget")
    ap.add_argument("--cpu-minutes", type=float, default=30.0, help="CPU-time budget (the process's)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)  # on shared cores, a second thread mostly spins
    tok = tiny_llava.build_tokenizer(tiny_llava.vocabulary() + ["what"], model_max_length=512)
    processor = tiny_llava.build_processor(tok)
    model = tiny_llava.build_model(tok, hidden=args.hidden, layers=args.layers, vision_hidden=args.hidden,
                                   vision_layers=args.layers, seed=args.seed, heads=4, max_positions=512)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    rng = np.random.default_rng([args.seed, 1])
    episodes = Episodes(processor, tok, image_pool(rng, processor, 200))
    held_out_pool = Episodes(processor, tok, image_pool(np.random.default_rng([args.seed, 98]), processor, 50))
    eval_rng = np.random.default_rng([args.seed, 99])
    held_out = [held_out_pool.batch(eval_rng, 50) for _ in range(4)]  # 200 episodes, unseen images
    shape_ids = torch.tensor([episodes.word[s] for s in SHAPES])
    query_at = episodes.answer_at[-1] - 1  # the logits that predict the query's answer word
    start, cpu0, step = time.time(), time.process_time(), 0

    def evaluate() -> float:
        model.eval()
        right = total = 0
        with torch.inference_mode():
            for ids, pixels, _, answers in held_out:
                logits = model(input_ids=ids, pixel_values=pixels).logits[:, query_at, shape_ids]
                right += sum(SHAPES[g] == a for g, a in zip(logits.argmax(-1).tolist(), answers))
                total += len(answers)
        model.train()
        return right / total

    print(f"step 0: held-out accuracy {evaluate():.3f} (chance 0.333)", flush=True)
    while time.time() - start < args.minutes * 60 and time.process_time() - cpu0 < args.cpu_minutes * 60:
        ids, pixels, labels, _ = episodes.batch(rng, args.batch)
        loss = model(input_ids=ids, pixel_values=pixels, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % args.eval_every == 0:
            print(f"step {step} ({time.time() - start:.0f} s, {time.process_time() - cpu0:.0f} CPU s): loss "
                  f"{loss.item():.3f}, held-out accuracy {evaluate():.3f}", flush=True)
    print(f"done: {step} steps in {time.time() - start:.0f} s ({time.process_time() - cpu0:.0f} CPU s), held-out "
          f"accuracy {evaluate():.3f}", flush=True)


if __name__ == "__main__":
    main()
