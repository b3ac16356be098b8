"""In-process EventBus: each subscription owns a bounded queue drained by one asyncio task.

At-most-once. On `LOSSY_TOPICS` a full queue drops its oldest event; on the other topics the
publisher waits for room (see `hcp.services.events` for the full contract).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import replace
from types import TracebackType

from hcp.adapters.bus.consumer import stop_consumer
from hcp.services.events import (
    LOSSY_TOPICS,
    BusClosed,
    BusStats,
    Commit,
    Event,
    Handler,
    check_name,
    decode,
    encode,
)

log = logging.getLogger(__name__)

_YIELD_EVERY = 256  # publish_many lets subscribers run this often, so a burst need not overflow


class MemorySubscription:
    """A handler, its queue and the task that feeds one to the other."""

    def __init__(
        self,
        bus: InMemoryBus,
        topic: str,
        handler: Handler,
        durable: str | None,
        commit: Commit | None = None,
    ) -> None:
        self._bus = bus
        self._topic = topic
        self._durable = durable
        self.handler = handler
        self.commit = commit
        self.lossy = topic in LOSSY_TOPICS
        self.queue: asyncio.Queue[Event] = asyncio.Queue(bus.queue_size)
        self.busy = False
        self.stopping = False
        self.task: asyncio.Task[None] | None = None

    @property
    def topic(self) -> str:
        return self._topic

    @property
    def durable(self) -> str | None:
        return self._durable

    async def unsubscribe(self) -> None:
        """Stop delivery; events still queued for this subscription are dropped."""
        await self._bus._detach(self)


class InMemoryBus:
    """An `EventBus` inside one process; `drain()` waits until every queued event is handled."""

    def __init__(
        self, *, queue_size: int = 10_000, serialize: bool = False, close_timeout: float = 5.0
    ) -> None:
        """`queue_size` bounds each subscription's queue. `serialize` hands subscribers
        decode(encode(event)), exactly what a broker would deliver (for tests; costs time)."""
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        self.queue_size = queue_size
        self._serialize = serialize
        self._close_timeout = close_timeout
        self._subscriptions: dict[str, list[MemorySubscription]] = {}
        self._durables: set[str] = set()
        self._stats = BusStats()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False

    @property
    def stats(self) -> BusStats:
        return replace(self._stats)

    async def publish(self, event: Event) -> None:
        self._check_open()
        if self._serialize:
            event = decode(encode(event))
        self._stats.published += 1
        for subscription in tuple(self._subscriptions.get(event.topic, ())):
            await self._offer(subscription, event)

    async def publish_many(self, events: Iterable[Event]) -> None:
        for count, event in enumerate(events, start=1):
            await self.publish(event)
            if count % _YIELD_EVERY == 0:
                await asyncio.sleep(0)

    async def subscribe(
        self,
        topic: str,
        handler: Handler,
        *,
        durable: str | None = None,
        commit: Commit | None = None,
    ) -> MemorySubscription:
        """Attach `handler` to `topic`; `durable` only reserves a name here (nothing persists),
        and `commit` is awaited by `drain` (`stats.delivered` counts handled events, committed
        or not)."""
        self._check_open()
        check_name("topic", topic)
        if durable is not None:
            check_name("durable name", durable)
            if durable in self._durables:
                raise ValueError(f"durable {durable!r} already has a live subscription")
            self._durables.add(durable)
        subscription = MemorySubscription(self, topic, handler, durable, commit)
        subscription.task = asyncio.create_task(
            self._consume(subscription), name=f"hcp-bus:{topic}:{durable or 'ephemeral'}"
        )
        self._subscriptions.setdefault(topic, []).append(subscription)
        return subscription

    async def drain(self) -> None:
        """Wait until every event accepted so far (and any they cause) has been handled, then
        commit each subscription that has a commit (a failed one is logged and counted in
        `stats.handler_errors`, as a handler's error is)."""
        while self._in_flight:
            await self._idle.wait()
        for subscriptions in list(self._subscriptions.values()):
            for subscription in list(subscriptions):
                if subscription.commit is not None:
                    await self._commit(subscription, subscription.commit)

    async def close(self) -> None:
        """Refuse new events (handlers publishing now get BusClosed too), deliver the queued
        ones for up to `close_timeout` seconds, then cancel whatever is still running."""
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.wait_for(self.drain(), self._close_timeout)
        except TimeoutError:
            log.warning("event bus closed with %d events undelivered", self._in_flight)
        for subscriptions in list(self._subscriptions.values()):
            for subscription in list(subscriptions):
                await self._detach(subscription, grace_s=0.0)

    async def _detach(self, subscription: MemorySubscription, grace_s: float | None = None) -> None:
        """Stop `subscription`'s task (its current handler call gets `grace_s` seconds; None:
        as long as it takes) and drop what is still queued."""
        subscriptions = self._subscriptions.get(subscription.topic, [])
        if subscription not in subscriptions:
            return
        subscriptions.remove(subscription)
        if subscription.durable is not None:
            self._durables.discard(subscription.durable)
        subscription.stopping = True
        await stop_consumer(subscription.task, busy=subscription.busy, grace_s=grace_s)
        self._discard_queued(subscription)

    async def __aenter__(self) -> InMemoryBus:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _offer(self, subscription: MemorySubscription, event: Event) -> None:
        queue = subscription.queue
        if subscription.lossy and queue.full():
            queue.get_nowait()
            self._stats.dropped += 1
            self._settle()
        self._in_flight += 1
        self._idle.clear()
        try:
            await queue.put(event)
        except BaseException:
            self._settle()
            raise
        if subscription.stopping:  # detached while this publisher waited for room
            self._discard_queued(subscription)

    async def _consume(self, subscription: MemorySubscription) -> None:
        while not subscription.stopping:
            event = await subscription.queue.get()
            subscription.busy = True
            try:
                await self._deliver(subscription, event)
            finally:
                subscription.busy = False
                self._settle()

    async def _deliver(self, subscription: MemorySubscription, event: Event) -> None:
        try:
            await subscription.handler(event)
        except Exception:
            self._stats.handler_errors += 1
            log.exception(
                "handler failed on %s event %s (key %s)", event.topic, event.id, event.key
            )
        else:
            self._stats.delivered += 1

    async def _commit(self, subscription: MemorySubscription, commit: Commit) -> None:
        try:
            await commit()
        except Exception:
            self._stats.handler_errors += 1
            log.exception("committing the %s subscription failed", subscription.topic)

    def _discard_queued(self, subscription: MemorySubscription) -> None:
        while not subscription.queue.empty():
            subscription.queue.get_nowait()
            self._stats.dropped += 1
            self._settle()

    def _settle(self) -> None:
        self._in_flight -= 1
        if self._in_flight == 0:
            self._idle.set()

    def _check_open(self) -> None:
        if self._closed:
            raise BusClosed("the in-memory event bus is closed")
