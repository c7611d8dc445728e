"""One registry per family (datasets, sources, models, attacks, calibrations, ...).

Adding a member is one small module and one ``@REGISTRY.register("name")`` line.
"""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from overconf.core.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, family: str):
        self.family = family
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.family} '{name}' is registered twice")
            self._items[name] = obj
            return obj

        return add

    def get(self, name: str, *, where: str | None = None) -> T:
        """The member called ``name``; an unknown name is a ConfigError listing the allowed ones."""
        if name not in self._items:
            at = f" (at '{where}')" if where else ""
            raise ConfigError(
                f"unknown {self.family} '{name}'{at}; allowed: {', '.join(self.names())}"
            )
        return self._items[name]

    __getitem__ = get

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
