"""`offline`: a judge that needs no model — a proxy for the demo and smoke runs.

Assistant 1 (the reference) gets 10; Assistant 2 gets 1 + 9 * token-F1 of its answer
against the reference (lower-cased word tokens), rounded to one decimal. Not an LLM's
judgment: it rewards wording overlap, not correctness beyond it.
"""

from __future__ import annotations

import re
from collections import Counter

from emidbench.score.judges import JUDGES


def token_f1(answer: str, reference: str) -> float:
    a, r = re.findall(r"\w+", answer.lower()), re.findall(r"\w+", reference.lower())
    common = sum((Counter(a) & Counter(r)).values())
    if not a or not r or common == 0:
        return 0.0
    p, rec = common / len(a), common / len(r)
    return 2 * p * rec / (p + rec)


@JUDGES.register("offline", "no model: token-F1 to the reference mapped to 1-10 (a proxy)")
class OfflineJudge:
    def __init__(self, arg: str = "", **_):
        self.identity = "offline-f1-v1"
        self.needs_text = True

    def score_pair(self, reference: str, answer: str) -> str:
        return f"10 {round(1 + 9 * token_f1(answer, reference), 1)}\ntoken-F1 proxy judge"
