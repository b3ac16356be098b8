"""What the fleet recorders share: each holds the events of a topic until it writes them in one
batch, and an event counts as handled (acknowledged to the bus) only once it is written.

A recorder is one bus handler for several topics (`asic-metrics`, `gpu-metrics`), each topic
with a subscription of its own, and it writes from three places: a subscription's commit (the
bus asks before acknowledging what it delivered), the control loop's poll, and a full batch
met by the handler. The rules that make "acknowledged" mean "stored" whichever writes first:

- Writes take turns (`_lock`), so a commit that finds nothing held has waited for the write
  that took its events, and that write has finished (a cancelled caller keeps the turn until
  its write's thread is done).
- A write for the poll or for a full batch that fails marks the topics it held events of as
  lost. The next commit of such a topic writes what the topic holds now, then raises
  `EventsNotStored`: on NATS the subscription's batch comes again, among it what the failed
  write dropped; the in-process bus, which never delivers twice, logs it. A subscription's own
  commit that fails marks nothing: the bus takes back that batch as it is.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sized
from typing import Generic, TypeVar

from hcp.domain.errors import HcpError


class EventsNotStored(HcpError):
    """Raised by a topic's commit when a failed write had taken some of the topic's events:
    they must come again (the bus redelivers what it has not acknowledged)."""


Batch = TypeVar("Batch", bound=Sized)


class TopicRecorder(ABC, Generic[Batch]):
    """Base of a recorder: `_take` empties a topic's holding, `_write` stores batches (in a
    worker thread); `commit` and `_store` are the ways in."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._lost: set[str] = set()

    async def commit(self, topic: str | None = None) -> int:
        """Write what is held for `topic` (None: every topic, as the poll does); how many
        records were written. EventsNotStored, once what is held is written, when a failed
        write had taken some of the topic's events since its last commit."""
        async with self._lock:
            if topic is None:
                topics = self._topics()
                return await self._locked_store(topics, [self._take(t) for t in topics])
            written = await self._locked_store([topic], [self._take(topic)], mark=False)
            if topic in self._lost:
                self._lost.discard(topic)
                raise EventsNotStored(f"a write of {topic} events failed; they must come again")
            return written

    async def _store(self, topic: str, batch: Batch) -> int:
        """Write a batch taken from `topic`'s holding outside `commit` (a full one)."""
        async with self._lock:
            return await self._locked_store([topic], [batch])

    async def _locked_store(
        self, topics: list[str], batches: list[Batch], *, mark: bool = True
    ) -> int:
        if not any(batches):
            return 0  # nothing to store: no worker thread, no transaction
        write = asyncio.ensure_future(asyncio.to_thread(self._write, batches))
        try:
            return await asyncio.shield(write)
        except asyncio.CancelledError:
            await asyncio.wait([write])  # its thread goes on: the turn is held until it ends
            raise
        finally:
            if mark and write.done() and (write.cancelled() or write.exception() is not None):
                self._lost.update(t for t, batch in zip(topics, batches, strict=True) if batch)

    @abstractmethod
    def _topics(self) -> list[str]:
        """The topics something may be held for."""

    @abstractmethod
    def _take(self, topic: str) -> Batch:
        """Empty `topic`'s holding; what it held."""

    @abstractmethod
    def _write(self, batches: Iterable[Batch]) -> int:
        """Store `batches` in one transaction (runs in a worker thread); how many records."""
