"""Small name -> plugin registries, in the spirit of imagecorruptions' {name: function}.

Each plugin is one small module that registers a class or factory with
`@REGISTRY.register(name, help)`. A registry names its plugin modules and imports them on
first use (no import-time side effects in the package that owns it, no import cycles).
"""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from emidbench.common.errors import UserError, closest

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, plugins=()):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._help: dict[str, str] = {}
        self._plugins = list(plugins)  # modules that register into this registry

    def _load(self) -> None:
        if self._plugins:
            from importlib import import_module

            plugins, self._plugins = self._plugins, []
            for module in plugins:
                import_module(module)

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
        self._load()
        try:
            return self._items[name]
        except KeyError:
            near = closest(name, self._items)
            hint = f"did you mean '{near}'?" if near else f"known: {', '.join(sorted(self._items)) or 'none'}"
            raise UserError(f"unknown {self.kind} {name!r} ({hint})") from None

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        self._load()
        return iter(sorted(self._items))

    def __len__(self) -> int:
        self._load()
        return len(self._items)

    def describe(self, name: str) -> str:
        self._load()
        return self._help.get(name, "")
