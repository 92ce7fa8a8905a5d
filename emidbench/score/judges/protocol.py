"""LLaVA-Bench's judge protocol: what the judge is shown, how its reply is read, and how
scores become the relative preference score and the win rate.

The judge sees the image context (COCO captions and boxes; the In-the-Wild caption; the
benchmark's context column), the question, "Assistant 1" = the reference answer and
"Assistant 2" = the model's answer, and replies with a first line of two scores 1-10.
The per-category instruction comes from LLaVA's rule.json when given (--judge-rules);
otherwise from our own wording of the same protocol (prompt version "emidbench-v1").

Unlike LLaVA's scripts (and lmms-eval, VLMEvalKit), an unparsable reply is NOT counted
as (-1, -1): it is retried, then recorded as failed and left out of every average, and
every aggregate says how many items it dropped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emidbench.errors import UserError

SYSTEM = "You are a helpful and precise assistant for checking the quality of the answer."
ROLE = "Assistant"
OWN_PROMPT = (
    "We would like your feedback on the performance of two AI assistants answering the user question above. "
    "The user asks the question while looking at an image; the image is described to you in the context above. "
    "Rate each assistant's helpfulness, relevance, accuracy and level of detail on a scale of 1 to 10, "
    "higher being better. First output a single line with only the two scores, for Assistant 1 and "
    "Assistant 2, separated by a space. Then explain your evaluation, avoiding any bias from the order in "
    "which the answers were presented."
)
OWN_VERSION = "emidbench-v1"


@dataclass(frozen=True)
class JudgePrompt:
    system: str
    content: str


class Rules:
    """category -> instruction: LLaVA's rule.json (keys llava_bench_<category>) or ours."""

    def __init__(self, path: Path | None = None):
        self.version = OWN_VERSION
        self.prompts: dict[str, str] = {}
        self.system = SYSTEM
        if path is not None:
            try:
                data = json.loads(Path(path).read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as e:
                raise UserError(f"{path}: cannot read judge rules ({type(e).__name__})") from None
            for cat in ("conv", "detail", "complex"):
                rule = data.get(f"llava_bench_{cat}") or data.get(cat)
                if rule:
                    self.prompts[cat] = rule["prompt"]
            self.version = f"rules:{Path(path).name}"

    def prompt_for(self, category: str | None) -> str:
        return self.prompts.get(category or "", OWN_PROMPT)


def build_prompt(rules: Rules, context: str | None, question: str, answer1: str, answer2: str,
                 category: str | None) -> JudgePrompt:
    """The review content exactly as LLaVA's eval_gpt_review_bench.py lays it out."""
    content = (f"[Context]\n{context or ''}\n\n"
               f"[Question]\n{question}\n\n"
               f"[{ROLE} 1]\n{answer1}\n\n[End of {ROLE} 1]\n\n"
               f"[{ROLE} 2]\n{answer2}\n\n[End of {ROLE} 2]\n\n"
               f"[System]\n{rules.prompt_for(category)}\n\n")
    return JudgePrompt(rules.system, content)


_NUM = r"[-+]?\d+(?:\.\d+)?"


def parse_scores(reply: str) -> tuple[float, float] | None:
    """The two scores on the first line ("8 7", "8,7", "8, 7"); None if unparsable."""
    first = (reply or "").strip().split("\n")[0].replace(",", " ")
    parts = first.split()
    if len(parts) == 2:
        try:
            a, b = float(parts[0]), float(parts[1])
        except ValueError:
            return None
        if 0 <= a <= 10 and 0 <= b <= 10:
            return a, b
    return None


def aggregate(records: list[dict], n_boot: int = 0, seed: int = 0, label: str = "") -> dict:
    """Relative preference score (100 * mean model / mean reference), per category, and
    win rate (model beats reference; ties count half), over the items not failed."""
    from emidbench.score.bootstrap import bootstrap_ci

    ok = [r for r in records if not r.get("failed")]
    out = {"judge_n": len(ok), "judge_failed": len(records) - len(ok)}
    if not ok:
        return out
    ref = np.array([r["scores"][0] for r in ok], dtype=np.float64)
    mod = np.array([r["scores"][1] for r in ok], dtype=np.float64)

    def rp(idx):
        return 100.0 * mod[idx].mean() / ref[idx].mean() if ref[idx].mean() > 0 else float("nan")

    wins = (mod > ref).astype(float) + 0.5 * (mod == ref)
    all_idx = np.arange(len(ok))
    out["rp_score"] = rp(all_idx)
    out["win_rate"] = float(wins.mean())
    for cat in ("conv", "detail", "complex"):
        idx = np.array([i for i, r in enumerate(ok) if r.get("category") == cat], dtype=int)
        if idx.size:
            out[f"rp_{cat}"] = rp(idx)
    if n_boot:
        out["rp_lo"], out["rp_hi"] = bootstrap_ci(rp, len(ok), n_boot, seed, f"rp:{label}")
        out["win_lo"], out["win_hi"] = bootstrap_ci(lambda i: float(wins[i].mean()), len(ok), n_boot, seed,
                                                    f"win:{label}")
    return out
