"""Small name -> plugin registries, in the spirit of imagecorruptions' {name: function}.

Each plugin is one small module that calls `REGISTRY.register(name)(obj)`; the package
that owns a registry imports its plugin modules so `emidbench list` sees them all.
"""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from emidbench.common.errors import UserError, closest

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._help: dict[str, str] = {}

    def register(self, name: str, help: str = "") -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = obj
            doc = help or (getattr(obj, "__doc__", None) or "").strip().splitlines()
            self._help[name] = doc if isinstance(doc, str) else (doc[0] if doc else "")
            return obj

        return add

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            near = closest(name, self._items)
            hint = f"did you mean '{near}'?" if near else f"known: {', '.join(sorted(self._items)) or 'none'}"
            raise UserError(f"unknown {self.kind} {name!r} ({hint})") from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def describe(self, name: str) -> str:
        return self._help.get(name, "")
