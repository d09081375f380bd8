"""Registries that fill themselves: a network or generator is one decorated function.

`CLASSIFIERS` holds the classifier networks (`train.arch`), filled when
`pneumogan.classify.nets` is imported; `GENERATORS` the generators (`gan.variant`), filled when
`pneumogan.generate.nets` is imported. The allowed values in params and in the docs are read
from them, so no list of names is kept by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Entry:
    """One registered builder, with what people and the rest of the code need to know of it."""

    name: str
    build: Callable[..., Any]
    title: str  # for people: docs, reports, the model card
    tags: frozenset[str] = frozenset()  # properties other code asks about ("backbone", "hinge")
    info: dict[str, Any] = field(default_factory=dict)


class Registry:
    """Named builders of one kind; an unknown name is an error that lists the known ones."""

    def __init__(self, kind: str, param: str, module: str) -> None:
        self.kind, self.param, self.module = kind, param, module
        self._entries: dict[str, Entry] = {}

    def register(
        self, name: str | None = None, *, title: str, tags: tuple[str, ...] = (), **info: Any
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: register the function under `name` (default: the function's name)."""

        def add(fn: Callable[..., Any]) -> Callable[..., Any]:
            key = name or fn.__name__
            if key in self._entries:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._entries[key] = Entry(key, fn, title, frozenset(tags), info)
            return fn

        return add

    def names(self, tag: str | None = None) -> tuple[str, ...]:
        """Registered names in registration order, or those carrying `tag`."""
        self._require_filled()
        return tuple(n for n, e in self._entries.items() if tag is None or tag in e.tags)

    def get(self, name: str) -> Entry:
        """The entry of `name`; an unknown name raises ValueError listing the known ones."""
        self._require_filled()
        try:
            return self._entries[name]
        except KeyError:
            raise ValueError(
                f"unknown {self.kind} {name!r}; {self.param} must be one of {list(self._entries)}"
            ) from None

    def __contains__(self, name: object) -> bool:
        self._require_filled()
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        self._require_filled()
        return iter(self._entries.values())

    def _require_filled(self) -> None:
        if not self._entries:  # a programming error, not a user's: say what to import
            raise RuntimeError(f"no {self.kind} registered yet: import {self.module} first")


CLASSIFIERS = Registry("classifier network", "train.arch", "pneumogan.classify.nets")
GENERATORS = Registry("generator", "gan.variant", "pneumogan.generate.nets")
