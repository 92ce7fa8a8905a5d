"""Model backends: how a question (image + text) becomes an answer.

A backend is a class registered in BACKENDS, constructed with the eval options, with:
    identity: str                 what the response cache keys on (model + backend)
    batch_size: int               how many requests `answer` takes at once
    answer(requests) -> results   one Result per Request, in order; a failure is a
                                  Result with `error` set, never an exception (an
                                  exception means the whole run cannot go on)
"""

from __future__ import annotations

from dataclasses import dataclass

from emidbench.registry import Registry

BACKENDS: Registry = Registry("model backend")


@dataclass(frozen=True)
class Request:
    image: bytes  # encoded image
    question: str
    system_prompt: str | None = None


@dataclass(frozen=True)
class Result:
    text: str
    prompt: str
    error: str | None = None


def _register() -> None:
    from emidbench.eval.backends import hf, openai, vllm  # noqa: F401


_register()
