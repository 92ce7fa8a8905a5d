"""A short trial: can a tiny LLaVA trained on multi-image episodes learn to use in-context
examples at all? (issue 16; the answer is reported in the README, "Domain suites").

Each episode is the ICL prompt the hf backend renders for tiny-llava's chat template: K=3
examples (one per shape, in random order: image, question, answer) as earlier turns, then
a query image. The shapes' names are permuted per episode (a random mapping from the
drawn shape to the answer word), so only the examples tell which word answers the query:
without using them a model scores 1/3 at best; a model that uses them approaches 100%.
Loss on every assistant answer (the second and third examples' answers are already
constrained by the earlier ones). Reported: held-out accuracy (the argmax over the three
answer words after the final "ASSISTANT:") as training goes on.

    nice -n 19 python scripts/trial_icl_episodes.py --minutes 10

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


def episode(rng: np.random.Generator, style: str = "plain"):
    """(images, prompt text with the answers filled in, answer words in order)."""
    names = [SHAPES[i] for i in rng.permutation(3)]  # this episode's name for each shape
    mapping = dict(zip(SHAPES, names))
    order = [SHAPES[i] for i in rng.permutation(3)] + [SHAPES[int(rng.integers(3))]]
    images = [render(style, s, str(rng.choice(list(COLORS))), rng) for s in order]
    answers = [mapping[s] for s in order]
    return images, answers


def prompt(n_turns: int, answers: list[str], with_last: bool) -> str:
    text = ""
    for i in range(n_turns):
        text += f"USER: <image>\n{QUESTION} ASSISTANT: "
        if i < n_turns - 1 or with_last:
            text += f"{answers[i]}</s>"
    return text.rstrip() if not with_last else text


def batch(processor, rng, n: int, train: bool):
    eps = [episode(rng) for _ in range(n)]
    texts = [prompt(4, a, with_last=train) for _, a in eps]
    enc = processor(images=[im for im, _ in eps], text=texts, padding=True, return_tensors="pt")
    return enc, [a for _, a in eps]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    tok = tiny_llava.build_tokenizer(tiny_llava.vocabulary() + ["what"], model_max_length=512)
    processor = tiny_llava.build_processor(tok)
    tok.padding_side = "left"
    model = tiny_llava.build_model(tok, hidden=args.hidden, layers=args.layers, vision_hidden=args.hidden,
                                   vision_layers=args.layers, seed=args.seed, heads=4, max_positions=512)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    ids = {w: tok.convert_tokens_to_ids(w) for w in ("assistant", ":", *SHAPES)}
    shape_ids = torch.tensor([ids[s] for s in SHAPES])
    eval_rng = np.random.default_rng([args.seed, 99])
    held_out = [batch(processor, eval_rng, 50, train=False) for _ in range(4)]  # 200 episodes
    rng = np.random.default_rng([args.seed, 1])
    start, step = time.time(), 0

    def evaluate() -> float:
        model.eval()
        right = total = 0
        with torch.inference_mode():
            for enc, answers in held_out:
                logits = model(**enc).logits[:, -1, shape_ids]
                guess = [SHAPES[i] for i in logits.argmax(-1).tolist()]
                right += sum(g == a[-1] for g, a in zip(guess, answers))
                total += len(answers)
        model.train()
        return right / total

    print(f"step 0: held-out accuracy {evaluate():.3f} (chance 0.333)", flush=True)
    while time.time() - start < args.minutes * 60:
        enc, _ = batch(processor, rng, args.batch, train=True)
        input_ids = enc["input_ids"]
        labels = torch.full_like(input_ids, -100)
        after = (input_ids[:, :-2] == ids["assistant"]) & (input_ids[:, 1:-1] == ids[":"])
        labels[:, 2:][after] = input_ids[:, 2:][after]
        loss = model(**enc, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % args.eval_every == 0:
            print(f"step {step} ({time.time() - start:.0f} s): loss {loss.item():.3f}, held-out accuracy "
                  f"{evaluate():.3f}", flush=True)
    print(f"done: {step} steps in {time.time() - start:.0f} s, held-out accuracy {evaluate():.3f}", flush=True)


if __name__ == "__main__":
    main()
