"""What the stages' option dataclasses (EvalOptions, ScoreOptions, ShiftOptions) share:
built from a mapping that may only name their fields, and checked value by value with one
line naming the flag."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Callable, ClassVar, Iterable

from emidbench.common.errors import UserError

Check = tuple[str, Callable[[Any], bool], str]  # (field, ok(value), what it must be)


class StageOptions:
    STAGE: ClassVar[str]  # "eval", "score", "shift": named in the unknown-option error
    INTERNAL: ClassVar[frozenset] = frozenset()  # fields never set from outside

    @classmethod
    def names(cls) -> set[str]:
        return {f.name for f in fields(cls)} - cls.INTERNAL

    @classmethod
    def from_mapping(cls, values: dict):
        unknown = set(values) - cls.names()
        if unknown:
            raise UserError(f"unknown {cls.STAGE} option {sorted(unknown)[0]!r}")
        opts = cls(**values)
        opts.normalise()
        return opts

    @classmethod
    def of(cls, options, kwargs: dict, what: str):
        """A stage function's `options` argument or its fields as keywords, not both."""
        if options is None:
            return cls.from_mapping(kwargs)
        if kwargs:
            raise TypeError(f"{what}: pass options or keywords, not both")
        return options

    def normalise(self) -> None:
        """Types the CLI or a config gives loosely (text for a path, for JSON); default: none."""

    def check_each(self, checks: Iterable[Check]) -> None:
        for key, ok, what in checks:
            value = getattr(self, key)
            if not ok(value):
                raise UserError(f"--{flag(key)} must be {what} (got {value!r})")


def flag(key: str) -> str:
    return key.replace("_", "-")


def is_int(v) -> bool:
    return type(v) is int


def is_num(v) -> bool:
    return type(v) in (int, float)


def positive_int(v) -> bool:
    return is_int(v) and v >= 1
