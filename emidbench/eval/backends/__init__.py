"""Model backends: how a question (image + text) becomes an answer.

A backend is a class registered in BACKENDS and constructed as `Backend(model, options)`
with an `EvalOptions` (emidbench/eval/options.py; each backend reads the fields it uses,
named in its constructor). It has:

    identity: str               what the response cache keys on: backend + model (+ the
                                weights' revision or content hash, dtype, and whatever else
                                changes answers — hf: batch size outside fp32) — never a secret
    batch_size: int             how many requests `answer` takes at once
    prompt(request) -> str      the exact prompt the model sees (hf/vllm: the chat template's
                                rendering); recorded in each answer and part of the cache key.
                                May raise: that item is recorded as failed (no traceback)
    answer(requests) -> results one Result per Request, in order. A failed item is a Result
                                with `error` set; an exception means the run cannot go on
                                (UserError: bad options, unreachable server, rejected key)
    record() -> dict            what the run record (eval.json) says about the backend
optional:
    load()                      load the weights; called only when something is left to
                                generate (a rerun answered from the cache loads nothing)
    shardable = False           refuse torchrun ranks (a backend that parallelises itself)
    takes_prompts = True        answer(requests, prompts) gets the prompts the stage rendered
    fallbacks: Counter          reason -> items a failed batch made it redo one at a time
                                (the stage counts them in the summary and eval.json)
    order_key(request, prompt)  a sort key (image size, prompt length): the stage batches
                                similar requests together within a scenario

Adding a backend = one small module here registering a class, plus one import line below.
"""

from __future__ import annotations

from dataclasses import dataclass

from emidbench.common.registry import Registry

BACKENDS: Registry = Registry("model backend")


@dataclass(frozen=True)
class Request:
    image: bytes  # the encoded image (PNG, JPEG, ...) as stored in RUN/shifts/images/
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
