"""LLM judges: LLaVA-Bench's review protocol (protocol.py) over different judges.

A judge has `identity` (cache key) and `judge(prompts: list[JudgePrompt]) -> list[str]`
(the raw replies, or an exception text per failed item). JUDGES maps a spec prefix
(`openai:<model>`, `hf:<id or path>`, `offline`) to a factory.
"""

from emidbench.registry import Registry

JUDGES: Registry = Registry("judge")

from emidbench.score.judges import hf, offline, openai  # noqa: E402,F401


def make_judge(spec: str, **options):
    kind, _, arg = spec.partition(":")
    return JUDGES.get(kind)(arg, **options)
