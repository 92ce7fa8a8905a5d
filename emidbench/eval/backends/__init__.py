"""Model backends: how a question (image + text) becomes an answer.

A backend is a class registered in BACKENDS, subclassing the `Backend` protocol below and
constructed as `Backend(model, options)` with an `EvalOptions` (emidbench/eval/options.py;
each backend reads the fields it uses, named in its constructor). What a backend can do
is declared on its class (`shardable`, `fallbacks`, `order_key`, `load`), never probed.

Adding a backend = one small module here registering a class, and its name in PLUGINS.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

from emidbench.common.registry import Registry

if TYPE_CHECKING:
    from emidbench.eval.options import EvalOptions

PLUGINS = ("hf", "openai", "vllm")
BACKENDS: Registry = Registry("model backend", plugins=[f"emidbench.eval.backends.{m}" for m in PLUGINS])


@dataclass(frozen=True)
class Example:
    """One in-context example: an earlier user turn (image + question) and the model's
    turn that answers it (issue 16: an ICL scenario's line carries them)."""

    image: bytes
    question: str
    answer: str


@dataclass(frozen=True)
class Request:
    image: bytes  # the encoded image (PNG, JPEG, ...) as stored in RUN/shifts/images/
    question: str
    system_prompt: str | None = None
    examples: tuple[Example, ...] = ()  # in-context examples, shown before the question in this order


@dataclass(frozen=True)
class Result:
    text: str
    prompt: str
    error: str | None = None


class Backend(Protocol):
    """What the eval stage asks of a backend. Subclass it: the defaults below are the
    capabilities a backend has unless its class says otherwise."""

    # what the response cache keys on: backend + model (+ the weights' revision or content
    # hash, dtype, and whatever else changes answers — hf: batch size outside fp32); never a secret
    identity: str
    batch_size: int  # how many requests `answer` takes at once
    shardable: ClassVar[bool] = True  # False: refuse torchrun ranks (a backend that parallelises itself)
    takes_examples: ClassVar[bool] = False  # renders Request.examples (in-context examples) as earlier turns

    def __init__(self, model: str, options: "EvalOptions") -> None: ...

    def prompt(self, request: Request) -> str:
        """The exact prompt the model sees (hf/vllm: the chat template's rendering), recorded
        in each answer and part of the cache key. May raise: that item is recorded failed."""
        ...

    def answer(self, requests: list[Request], prompts: list[str]) -> list[Result]:
        """One Result per Request, in order, given the prompts the stage rendered with
        `prompt`. A failed item is a Result with `error` set; an exception means the run
        cannot go on (UserError: bad options, unreachable server, rejected key)."""
        ...

    def record(self) -> dict:
        """What the run record (eval.json) says about the backend (no secrets)."""
        ...

    def check_examples(self) -> None:
        """Called once when the selected scenarios carry in-context examples: raise a
        UserError (one line) if this backend or model cannot show them."""
        from emidbench.common.errors import UserError

        if not self.takes_examples:
            raise UserError(f"the {type(self).__name__} backend does not render in-context examples; evaluate the "
                            "ICL scenarios (*_icl*) with the hf or openai backend, or leave them out with --scenarios")

    def load(self) -> None:
        """Load the weights; called only when something is left to generate (a rerun
        answered from the cache loads nothing). Default: nothing to load."""

    def order_key(self, request: Request, prompt: str):
        """A sort key (image size, prompt length): the stage batches similar requests
        together within a scenario. Default: all alike (question order)."""
        return 0

    def redo_alone(self, requests: list[Request], prompts: list[str], positions: list[int], results: list,
                   error: BaseException) -> list:
        """A batch failed with `error`: a lone item is that item's recorded failure; several
        are each asked again alone (one bad image, or memory, must not fail the others),
        and counted in `fallbacks` with the reason."""
        from emidbench.common.errors import first_line

        reason = f"{type(error).__name__}: {first_line(error)}"
        if len(positions) == 1:
            results[positions[0]] = Result("", prompts[positions[0]], reason)
            return results
        self.fallbacks[reason] += len(positions)
        for i in positions:
            results[i] = self.answer([requests[i]], [prompts[i]])[0]
        return results

    @property
    def fallbacks(self) -> Counter:
        """Reason -> items a failed batch made it redo one at a time (the stage counts them
        in the summary and eval.json). Empty for a backend that never redoes items."""
        return self.__dict__.setdefault("_fallbacks", Counter())

    @fallbacks.setter
    def fallbacks(self, value: Counter) -> None:
        self.__dict__["_fallbacks"] = value
