"""A small name -> object registry used for architectures, losses, granularities, extractors."""
from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterable, Iterator, TypeVar

from .errors import InputError

T = TypeVar("T")


def unknown_choice(kind: str, value: object, names: Iterable[str]) -> InputError:
    """The one wording for a value outside a set of names, with the closest valid names as a hint."""
    names = list(names)
    close = difflib.get_close_matches(str(value), names, n=3)
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    return InputError(f"unknown {kind} {value!r}{hint}; choose one of: {', '.join(names)}")


def check_choice(kind: str, value: str, names: Iterable[str]) -> str:
    """``value`` when it is one of ``names``; else :func:`unknown_choice`'s error."""
    names = list(names)
    if value not in names:
        raise unknown_choice(kind, value, names)
    return value


class Registry(Generic[T]):
    """Plain mapping filled by ``register``; lookups that fail list the valid names."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            self.add(name, obj)
            return obj

        return add

    def add(self, name: str, obj: T) -> None:
        if not name or name != name.strip():
            raise ValueError(f"invalid {self.kind} name {name!r}")
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise unknown_choice(self.kind, name, self.names()) from None

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def items(self):
        return self._items.items()
