"""LLM judges behind LLaVA-Bench's review protocol (protocol.py).

A judge has `identity` (part of the judge cache key: it changes when the judge or its
generation settings do) and `judge(prompts: list[JudgePrompt])`, a generator yielding
(index, reply) as replies arrive — reply is the raw text, or an Exception for an item
that failed (a UserError, e.g. an endpoint that is down, is raised instead). The score
stage caches each reply as it arrives, so a run stopped half-way keeps what it got.
A judge with `deterministic = True` (greedy, offline) is not asked again after an
unparsable reply: it would only repeat itself.

JUDGES maps the part of `--judge` before the colon to a factory called as
factory(arg, **options): `openai:<model>`, `hf:<id or path>`, `offline`.
"""

from typing import ClassVar, Iterator, Protocol

from emidbench.common.registry import Registry

JUDGES: Registry = Registry("judge", plugins=[f"emidbench.score.judges.{m}" for m in ("hf", "offline", "openai")])


class Judge(Protocol):
    """What the score stage asks of a judge (subclass it)."""

    identity: str  # part of the judge cache key
    # True (greedy, offline): an unparsable reply is not asked again, it would only repeat itself
    deterministic: ClassVar[bool] = False

    def judge(self, prompts: list) -> Iterator[tuple[int, "str | Exception"]]:
        """(index, reply) as replies arrive: the raw text, or an Exception for an item
        that failed (a UserError, e.g. an endpoint that is down, is raised instead)."""
        ...

    def describe(self) -> dict:
        """What score.json records about it. Default: nothing."""
        return {}


def check_judge_spec(spec: str) -> None:
    """A --judge value's kind is a registered judge; else one line with the likely intent:
    `gpt4` is most likely a model name meant as `openai:gpt4`."""
    from emidbench.common.errors import UserError, closest

    kind = str(spec).partition(":")[0]
    if kind in JUDGES:
        return
    near = closest(kind, JUDGES)
    if near:
        raise UserError(f"unknown judge {kind!r} (did you mean '{near}'?)")
    guess = f"did you mean 'openai:{spec}'? " if ":" not in str(spec) else ""
    raise UserError(f"unknown judge {str(spec)!r} ({guess}a judge is openai:<model>, hf:<id or path> or offline)")


def make_judge(spec: str, **options):
    """`openai:gpt-4o` -> JUDGES["openai"]("gpt-4o", **options)."""
    check_judge_spec(spec)
    kind, _, arg = str(spec).partition(":")
    return JUDGES.get(kind)(arg, **options)
