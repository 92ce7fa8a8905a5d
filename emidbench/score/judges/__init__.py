"""LLM judges behind LLaVA-Bench's review protocol (protocol.py).

A judge has `identity` (part of the judge cache key: it changes when the judge or its
generation settings do) and `judge(prompts: list[JudgePrompt])`, a generator yielding
(index, reply) as replies arrive — reply is the raw text, or an Exception for an item
that failed (a UserError, e.g. an endpoint that is down, is raised instead). The score
stage caches each reply as it arrives, so a run stopped half-way keeps what it got.
A judge with `deterministic = True` (greedy, offline) is not asked again after an
unparsable reply: it would only repeat itself.

JUDGES maps the part of `--judge` before the colon to a class built as cls(arg, options)
with one JudgeOptions (below): `openai:<model>`, `hf:<id or path>`, `offline`; each reads
the fields it has a use for.
"""

from dataclasses import dataclass
from typing import ClassVar, Iterator, Protocol

from emidbench.common.registry import Registry

JUDGES: Registry = Registry("judge", plugins=[f"emidbench.score.judges.{m}" for m in ("hf", "offline", "openai")])


@dataclass(frozen=True)
class JudgeOptions:
    """What a judge is built with (ScoreOptions.judge_options())."""

    max_tokens: int | None = None  # the reply's length limit (None: the judge's own default)
    # openai
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"  # the variable holding the key, never the key
    api: dict | None = None  # ChatOptions: api_type, api_version, organization, headers, timeout, retries
    concurrency: int = 4  # requests in flight
    # hf
    batch_size: int = 8  # prompts per generate call
    device: str = "auto"
    dtype: str = "auto"


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


def make_judge(spec: str, options: JudgeOptions | None = None, **fields):
    """`openai:gpt-4o` -> JUDGES["openai"]("gpt-4o", options); `options` or its fields as keywords."""
    check_judge_spec(spec)
    kind, _, arg = str(spec).partition(":")
    return JUDGES.get(kind)(arg, options if options is not None else JudgeOptions(**fields))
