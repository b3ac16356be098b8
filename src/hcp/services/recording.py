"""What the fleet recorders share: each holds the events of a topic until it writes them in one
batch, and an event counts as handled (acknowledged to the bus) only once it is written.

A recorder is one bus handler for several topics (`asic-metrics`, `gpu-metrics`), each topic
with a subscription of its own, and it writes from three places: a subscription's commit (the
bus asks before acknowledging what it delivered), the control loop's poll, and a full batch.
The rules that make "acknowledged" mean "stored" whichever writes first:

- Writes take turns (`_lock`), so a commit that finds nothing held has waited for the write
  that took its events, and that write has finished.
- A write that fails marks its topics lost. The next commit of such a topic fails, so the bus
  takes back (redelivers) what that subscription had not yet had acknowledged, among it what
  the failed write dropped. What it still holds is dropped too: it comes again.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Generic, TypeVar

from hcp.domain.errors import HcpError


class EventsNotStored(HcpError):
    """A topic's commit after a write that held some of its events failed: they must come
    again (the bus redelivers what it has not acknowledged)."""


Batch = TypeVar("Batch")


class TopicRecorder(ABC, Generic[Batch]):
    """Base of a recorder: `_take` empties a topic's holding, `_write` stores batches (in a
    worker thread); `commit` and `_store` are the ways in."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._lost: set[str] = set()

    async def commit(self, topic: str | None = None) -> int:
        """Write what is held for `topic` (None: every topic); how many records were written.
        EventsNotStored when a write that held some of the topic's events failed since its
        last commit."""
        async with self._lock:
            if topic is not None and topic in self._lost:
                self._lost.discard(topic)
                self._take(topic)
                raise EventsNotStored(f"a write of {topic} events failed; they must come again")
            topics = [topic] if topic is not None else self._topics()
            return await self._locked_store(topics, [self._take(t) for t in topics])

    async def _store(self, topic: str, batch: Batch) -> int:
        """Write a batch taken from `topic`'s holding outside `commit` (a full one)."""
        async with self._lock:
            return await self._locked_store([topic], [batch])

    async def _locked_store(self, topics: list[str], batches: list[Batch]) -> int:
        try:
            return await asyncio.to_thread(self._write, batches)
        except BaseException:
            self._lost.update(topics)
            raise

    @abstractmethod
    def _topics(self) -> list[str]:
        """The topics something may be held for."""

    @abstractmethod
    def _take(self, topic: str) -> Batch:
        """Empty `topic`'s holding; what it held."""

    @abstractmethod
    def _write(self, batches: Iterable[Batch]) -> int:
        """Store `batches` in one transaction (runs in a worker thread); how many records."""
