"""`offline`: a judge that needs no model — a PROXY for smoke runs, CI and the demo.

Not an LLM's judgment: the reference answer gets 10 and the model's answer
1 + 9 * token-F1 against the reference (case-folded word tokens, any script), rounded
to one decimal — it rewards wording overlap with the reference, nothing more. Its
relative scores are not comparable with a GPT-4 judge's. It speaks the protocol (a
first line with two scores), so its replies go through the same parsing, caching and
aggregation as a real judge's; it is position-blind, so --debias changes nothing.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Iterator

from emidbench.score.judges import JUDGES, Judge, JudgeOptions
from emidbench.score.judges.protocol import JudgePrompt

_WORD = re.compile(r"\w+", re.UNICODE)


def token_f1(answer: str, reference: str) -> float:
    a, r = _WORD.findall(answer.casefold()), _WORD.findall(reference.casefold())
    common = sum((Counter(a) & Counter(r)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(a), common / len(r)
    return 2 * precision * recall / (precision + recall)


@JUDGES.register("offline", "offline: no model; token-F1 to the reference on the 1-10 scale (a PROXY)")
class OfflineJudge(Judge):
    deterministic = True

    def __init__(self, arg: str = "", options: JudgeOptions = JudgeOptions()):
        """The offline judge takes no model and no options (it calls nothing)."""
        self.identity = "offline:token-f1-v1"

    def describe(self) -> dict:
        return {"proxy": True}

    def reply(self, p: JudgePrompt) -> str:
        reference, answer = (p.answer1, p.answer2) if p.reference_slot == 1 else (p.answer2, p.answer1)
        model_score = round(1 + 9 * token_f1(answer, reference), 1)
        s1, s2 = (10.0, model_score) if p.reference_slot == 1 else (model_score, 10.0)
        return f"{s1:g} {s2:g}\nToken-F1 proxy judge: the answer is scored by its word overlap with the reference."

    def judge(self, prompts: list[JudgePrompt]) -> Iterator[tuple[int, str]]:
        for i, p in enumerate(prompts):
            yield i, self.reply(p)
