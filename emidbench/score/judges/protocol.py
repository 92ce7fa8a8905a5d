"""LLaVA-Bench's judge protocol: what the judge is shown, how its reply is read, and how
the scores become the relative preference score and the win rate.

What the judge sees (one user message after a fixed system message), laid out exactly as
LLaVA's review scripts (eval_gpt_review_visual.py / eval_gpt_review_bench.py) do:

    [Context]\\n{context}\\n\\n[Question]\\n{question}\\n\\n
    [Assistant 1]\\n{answer 1}\\n\\n[End of Assistant 1]\\n\\n
    [Assistant 2]\\n{answer 2}\\n\\n[End of Assistant 2]\\n\\n
    [System]\\n{instruction}\\n\\n

with Assistant 1 = the reference answer and Assistant 2 = the model's (swapped for the
second order of --debias). {context} is the scenario record's `context`: for LLaVA-Bench
COCO the five captions, a blank line and the boxes ("category: [x1, y1, x2, y2]"); for
In-the-Wild its caption; for a custom benchmark its mapped context column.

The instruction: LLaVA's rule.json prompts are Apache-2.0 text we do not ship. Given
--judge-rules PATH (a rule.json), its prompts are used — the COCO ones (keys conv /
detail / complex) for a captions-and-boxes context, the In-the-Wild ones (keys
llava_bench_<category>) otherwise, as LLaVA's two scripts do — and the prompt version
is "rules:<sha256 of the file>". Without it, our own wording of the same protocol
(version OWN_VERSION): same role, same request for a first line with the two scores.

Reading the reply: the first line must hold exactly two numbers, separated by a comma
and/or spaces (LLaVA's parse_score, tolerant of extra spaces and markdown bold).
Unlike LLaVA's scripts (and lmms-eval, VLMEvalKit), an unparsable reply is NOT counted
as (-1, -1) — which drags both means down and inflates the relative score — it is
retried, then recorded as failed and left out of every average, and every aggregate
says how many items it dropped.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emidbench.common.errors import UserError

SYSTEM = "You are a helpful and precise assistant for checking the quality of the answer."
ROLE = "Assistant"
CATEGORIES = ("conv", "detail", "complex")

_OWN_COMMON = (
    "Please rate the helpfulness, relevance, accuracy and level of detail of their responses. Each assistant "
    "receives one overall score on a scale of 1 to 10, where a higher score means better overall performance.\n"
    "Please first output a single line that contains only the two scores, for Assistant 1 and Assistant 2 in "
    "that order, separated by a space.\n"
    "In the following lines, please give a thorough explanation of your evaluation. Avoid any bias, and make "
    "sure the order in which the two responses were presented does not influence your judgment."
)
OWN_PROMPTS = {
    "boxes": (
        "We would like your feedback on how well two AI assistants answered the user question shown above. "
        "The user asked the question while looking at an image. For your reference, the image is described to "
        "you by five sentences about it and by the bounding box of each object in the scene, written as "
        "[x1, y1, x2, y2] with numbers between 0 and 1: the top-left x and y and the bottom-right x and y.\n"
        + _OWN_COMMON),
    "caption": (
        "We would like your feedback on how well two AI assistants answered the user question shown above. "
        "The user asked the question while looking at an image. For your reference, the image is described to "
        "you in a few sentences.\n" + _OWN_COMMON),
}
OWN_VERSION = "emidbench-judge-v1"

# A LLaVA box line: "category: [0.37, 0.584, 0.504, 0.709]".
_BOX_LINE = re.compile(r"^[^\n:]+: \[\s*[-+\d.eE]+(\s*,\s*[-+\d.eE]+){3}\s*\]$", re.MULTILINE)


@dataclass(frozen=True)
class JudgePrompt:
    """One judgment to ask for: the chat messages, plus the fields they were built from
    (the offline judge reads those instead of the text)."""
    system: str
    content: str
    question: str = ""
    answer1: str = ""
    answer2: str = ""
    reference_slot: int = 1  # which assistant is the reference answer (2 when swapped)
    category: str | None = None

    def messages(self) -> list[dict]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.content}]


def context_kind(context: str | None) -> str:
    """"boxes" for a COCO captions-and-boxes context, else "caption"."""
    return "boxes" if context and _BOX_LINE.search(context) else "caption"


class Rules:
    """The judge instruction per (context kind, category): LLaVA's rule.json or ours."""

    def __init__(self, path: Path | str | None = None):
        self.system = SYSTEM
        self.role = ROLE
        self.path = None
        self._rules: dict[str, dict] = {}
        self.version = OWN_VERSION
        if path is None:
            return
        self.path = Path(path)
        try:
            raw = self.path.read_bytes()
            data = json.loads(raw.decode("utf-8"))
        except FileNotFoundError:
            raise UserError(f"{path}: judge rules file not found") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UserError(f"{path}: not a readable rule.json ({type(e).__name__})") from None
        if not isinstance(data, dict):
            raise UserError(f"{path}: a rule.json maps names to {{\"role\", \"prompt\"}}")
        for key, rule in data.items():
            if isinstance(rule, dict) and isinstance(rule.get("prompt"), str):
                self._rules[str(key)] = rule
        wanted = [k for c in CATEGORIES for k in (c, f"llava_bench_{c}")]
        if not any(k in self._rules for k in wanted):
            raise UserError(f"{path}: no judge prompts for {', '.join(wanted)}")
        self.version = f"rules:{hashlib.sha256(raw).hexdigest()[:16]}"

    def rule_for(self, category: str | None, kind: str) -> tuple[str, str]:
        """(role, instruction). The three categories share one prompt per context kind in
        LLaVA's file; an unknown category falls back to the first one present."""
        if not self._rules:
            return ROLE, OWN_PROMPTS[kind]
        names = [n for n in (category, *CATEGORIES) if n]
        coco, wild = list(names), [f"llava_bench_{n}" for n in names]
        for k in (coco + wild if kind == "boxes" else wild + coco):
            if k in self._rules:
                rule = self._rules[k]
                return str(rule.get("role") or ROLE), rule["prompt"]
        raise AssertionError("checked in __init__")


def build_prompt(rules: Rules, context: str | None, question: str, answer1: str, answer2: str,
                 category: str | None, reference_slot: int = 1) -> JudgePrompt:
    """The review message exactly as LLaVA's review scripts lay it out."""
    role, instruction = rules.rule_for(category, context_kind(context))
    content = (f"[Context]\n{context or ''}\n\n"
               f"[Question]\n{question}\n\n"
               f"[{role} 1]\n{answer1}\n\n[End of {role} 1]\n\n"
               f"[{role} 2]\n{answer2}\n\n[End of {role} 2]\n\n"
               f"[System]\n{instruction}\n\n")
    return JudgePrompt(rules.system, content, question, answer1, answer2, reference_slot, category)


def parse_scores(reply: str | None) -> tuple[float, float] | None:
    """The two scores on the reply's first line ("8 7", "8,7", "8, 7", "**8 7**");
    None when it is not exactly two numbers in [0, 10]."""
    if not isinstance(reply, str):
        return None
    first = reply.strip().split("\n")[0].strip().strip("*").replace(",", " ")
    parts = first.split()
    if len(parts) != 2:
        return None
    try:
        a, b = float(parts[0]), float(parts[1])
    except ValueError:
        return None
    if not all(np.isfinite([a, b])) or not (0 <= a <= 10 and 0 <= b <= 10):
        return None
    return a, b


def aggregate(records: list[dict], n_boot: int = 0, seed: int = 0, label: str = "") -> dict:
    """Per scenario, over the items NOT failed: rp_score = 100 * mean(model) / mean(reference)
    (LLaVA's summarize_gpt_review convention, unrounded), per category, win rate (model
    scored above the reference; ties count half), judge_n / judge_failed, and with
    n_boot > 0 percentile bootstrap intervals over items."""
    ok = [r for r in records if not r.get("failed")]
    out: dict = {"judge_n": len(ok), "judge_failed": len(records) - len(ok)}
    if not ok:
        return out
    ref = np.array([r["scores"][0] for r in ok], dtype=np.float64)
    mod = np.array([r["scores"][1] for r in ok], dtype=np.float64)
    wins = (mod > ref).astype(np.float64) + 0.5 * (mod == ref)

    def rp(idx: np.ndarray) -> float:
        denominator = ref[idx].mean()
        return float(100.0 * mod[idx].mean() / denominator) if denominator > 0 else float("nan")

    out["rp_score"] = rp(np.arange(len(ok)))
    out["win_rate"] = float(wins.mean())
    for cat in CATEGORIES:
        idx = np.array([i for i, r in enumerate(ok) if r.get("category") == cat], dtype=int)
        if idx.size:
            out[f"rp_{cat}"] = rp(idx)
    if n_boot:
        from emidbench.score.bootstrap import bootstrap_ci

        out["rp_lo"], out["rp_hi"] = bootstrap_ci(rp, len(ok), n_boot, seed, f"rp:{label}")
        out["win_lo"], out["win_hi"] = bootstrap_ci(lambda i: float(wins[i].mean()), len(ok), n_boot, seed,
                                                    f"win:{label}")
    return out
