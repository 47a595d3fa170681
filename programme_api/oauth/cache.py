"""A bounded in-process cache whose entries are dropped by tag when what they were built from changes.

Each entry is stored under a key (a bearer token, a client id) with the tags of the rows it was read from
(``family:<id>``, ``client:<pk>``, ``user:<id>``, see ``invalidation.py``). An invalidation drops every entry
carrying one of its tags. Whether an entry may be used at all is decided by the caller (``listeners.py``
says how fresh an entry must be), from ``loaded_at``.

A read that started before an invalidation must not store what it read: it may have seen the rows from
before the change. ``epoch`` counts invalidations, the reader takes it before reading, and ``put`` refuses
the value when the epoch has moved on since (the reader still answers its own request with it).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

V = TypeVar("V")

#: Entries kept per cache; the oldest go first when it is full (tokens of a busy worker, not every token).
DEFAULT_MAX_ENTRIES = 20_000


@dataclass(frozen=True)
class Entry(Generic[V]):
    value: V
    tags: tuple[str, ...]
    loaded_at: float


class TaggedCache(Generic[V]):
    """Key → value, dropped by tag; single-threaded (one event loop), so no locking."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self.epoch = 0
        self._entries: dict[str, Entry[V]] = {}
        self._by_tag: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> Entry[V] | None:
        return self._entries.get(key)

    def put(self, key: str, value: V, tags: Iterable[str], epoch: int) -> None:
        """Store ``value`` unless an invalidation arrived since the reader took ``epoch``."""
        if epoch != self.epoch:
            return
        self._drop(key)
        while len(self._entries) >= self.max_entries:
            self._drop(next(iter(self._entries)))
        entry = Entry(value, tuple(tags), time.monotonic())
        self._entries[key] = entry
        for tag in entry.tags:
            self._by_tag.setdefault(tag, set()).add(key)

    def invalidate(self, tags: Iterable[str]) -> None:
        self.epoch += 1
        for tag in tags:
            for key in self._by_tag.pop(tag, set()):
                self._drop(key)

    def clear(self) -> None:
        self.epoch += 1
        self._entries.clear()
        self._by_tag.clear()

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        for tag in entry.tags:
            keys = self._by_tag.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_tag[tag]
