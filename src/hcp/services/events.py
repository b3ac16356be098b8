"""Events and the EventBus port: how readings, prices, workload lifecycle and dispatch records
travel from the process that observes them to the processes that store or act on them.

Delivery semantics, per implementation (the contract tests hold both to the common part):

- Common: `subscribe` is awaited and returns once the subscription is live; every event published
  after that reaches the handler, one at a time, in publish order (so in order per key), unless
  the implementation's loss or redelivery rule below applies. A handler that raises is logged and
  counted in `stats.handler_errors`; it never reaches the publisher and never stops the
  subscription or the bus. Each subscription has its own copy of every event of its topic.
- In-process (`InMemoryBus`): at-most-once, nothing survives the process. Each subscription has a
  bounded queue. On `LOSSY_TOPICS` (readings and prices, where the newest value supersedes the
  older ones) a full queue drops its oldest event (`stats.dropped`) and the publisher never
  waits; on every other topic (workload events, dispatch records) a full queue makes the
  publisher wait: back-pressure, never loss. A handler that publishes to a blocking topic it
  also consumes can therefore deadlock on a full queue; hand such work to another task.
- NATS JetStream (`NatsJetStreamBus`): at-least-once. Events are stored in a stream (retained up
  to its max age); a `durable` subscription keeps its place on the server across restarts, and
  subscriptions in several processes that share a durable name share its events (each event goes
  to one of them). An event is acknowledged only after the handler returns and, for a
  subscription with a `commit`, after the commit that follows it; a handler error (or a failed
  commit, for every event it covered) negatively acknowledges it with a delay, so it is
  redelivered (out of order with later events of the same key) up to a maximum number of
  attempts. Handlers must therefore be idempotent; `Event.id` is the deduplication key.
- `commit`: a subscriber that stores its events in batches (the fleet recorders) gives
  `subscribe` a commit, which writes what its handler holds. NATS awaits it after each batch of
  delivered events and before acknowledging any of them, so an acknowledged event is a stored
  one and a process killed at any moment loses nothing the broker let go of. The in-process bus,
  which loses its queues with the process anyway, awaits it in `drain`, so a drained bus has
  stored what it delivered.

Wire format (`encode`/`decode`): one JSON object (orjson), `at` and any datetimes in the payload
as ISO 8601 strings. Payload datetimes come back as strings: the payload is plain JSON.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from hcp.domain.errors import HcpError
from hcp.domain.workloads import StateChange

ASIC_METRICS = "asic-metrics"
GPU_METRICS = "gpu-metrics"
PRICE_DATA = "price-data"
WORKLOAD_EVENTS = "workload-events"
DISPATCH = "dispatch"

TOPICS = (ASIC_METRICS, GPU_METRICS, PRICE_DATA, WORKLOAD_EVENTS, DISPATCH)
LOSSY_TOPICS = frozenset({ASIC_METRICS, GPU_METRICS, PRICE_DATA})
"""Topics whose newest event supersedes older ones: an in-process bus may drop the oldest."""

WIRE_VERSION = 1
_NAME = re.compile(r"[A-Za-z0-9_-]+")


class MalformedEvent(HcpError, ValueError):
    """Bytes that are not an encoded event; `reason` says what is wrong."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"malformed event: {reason}")
        self.reason = reason


class BusClosed(HcpError):
    """Publishing or subscribing on a bus that has been closed."""


class BusUnavailable(HcpError, ConnectionError):
    """The bus's server does not answer (at connect); `url` says where it was looked for
    (without a password)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"the event bus at {url} does not answer: {reason}")
        self.url = url
        self.reason = reason


class PublishFailed(HcpError):
    """The bus could not confirm that events were accepted; `failed` of `total` are unconfirmed
    (they may still have been stored: publishing them again is safe, ids deduplicate)."""

    def __init__(self, failed: int, total: int, reason: str) -> None:
        super().__init__(f"{failed} of {total} events not confirmed by the bus: {reason}")
        self.failed = failed
        self.total = total
        self.reason = reason


def check_name(kind: str, name: str) -> None:
    """ValueError unless `name` (a topic or durable name) is letters, digits, '-' and '_'."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"{kind} {name!r}: use letters, digits, '-' and '_' only")


def _new_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class Event:
    """One fact on a topic: `key` names its subject (device or workload id), `at` when it
    happened (stored as UTC), `payload` its JSON-serialisable content (treat as read-only)."""

    topic: str
    key: str
    at: datetime
    payload: Mapping[str, Any] = field(hash=False)
    id: str = field(default_factory=_new_id)

    def __post_init__(self) -> None:
        check_name("topic", self.topic)
        if self.at.utcoffset() is None:
            raise ValueError(f"event {self.id}: `at` must be timezone-aware, got {self.at}")
        try:
            object.__setattr__(self, "at", self.at.astimezone(UTC))
        except OverflowError as exc:
            raise ValueError(f"event {self.id}: `at` {self.at} is out of range in UTC") from exc


def encode(event: Event) -> bytes:
    """The event as one JSON object; TypeError if the payload is not JSON-serialisable."""
    payload = event.payload if isinstance(event.payload, dict) else dict(event.payload)
    document = {
        "v": WIRE_VERSION,
        "id": event.id,
        "topic": event.topic,
        "key": event.key,
        "at": event.at,
        "payload": payload,
    }
    try:
        return orjson.dumps(document)
    except orjson.JSONEncodeError as exc:
        raise TypeError(f"event {event.id} on {event.topic}: payload is not JSON: {exc}") from exc


def decode(data: bytes) -> Event:
    """The event `encode` wrote; MalformedEvent for anything else."""
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise MalformedEvent(f"not JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise MalformedEvent("not a JSON object")
    if document.get("v") != WIRE_VERSION:
        raise MalformedEvent(f"unknown wire version {document.get('v')!r}")
    fields = {name: _string_field(document, name) for name in ("id", "topic", "key", "at")}
    payload = document.get("payload")
    if not isinstance(payload, dict):
        raise MalformedEvent("payload is not a JSON object")
    try:
        at = datetime.fromisoformat(fields["at"])
        return Event(fields["topic"], fields["key"], at, payload, fields["id"])
    except ValueError as exc:
        raise MalformedEvent(str(exc)) from exc


def _string_field(document: dict[str, Any], name: str) -> str:
    value = document.get(name)
    if not isinstance(value, str):
        raise MalformedEvent(f"field {name!r} is missing or not a string")
    return value


@dataclass(slots=True)
class BusStats:
    """Counters since the bus was created. `delivered` counts successful handler calls,
    `dropped` events discarded unseen (overflow, or queued at unsubscribe/close),
    `malformed` messages that did not decode, `redelivered` deliveries after the first."""

    published: int = 0
    delivered: int = 0
    dropped: int = 0
    handler_errors: int = 0
    malformed: int = 0
    redelivered: int = 0


Handler = Callable[[Event], Awaitable[None]]
Commit = Callable[[], Awaitable[object]]
"""Writes what a subscription's handler holds (see the module's `commit`); raises if it cannot."""


class Subscription(Protocol):
    """One handler attached to one topic."""

    @property
    def topic(self) -> str: ...

    @property
    def durable(self) -> str | None: ...

    async def unsubscribe(self) -> None:
        """Stop delivery, after the handler call in progress (if any) returns. A durable
        subscription on a persistent bus keeps its place: subscribing again resumes there."""
        ...


class EventBus(Protocol):
    """Carries events from publishers to subscribers; see the module docstring for semantics."""

    @property
    def stats(self) -> BusStats:
        """A snapshot of the counters."""
        ...

    async def publish(self, event: Event) -> None:
        """Hand one event to the bus; returns once the bus has accepted it (stored, on a
        persistent bus). BusClosed after `close`."""
        ...

    async def publish_many(self, events: Iterable[Event]) -> None:
        """`publish` for many events, in order, amortising the per-event cost."""
        ...

    async def subscribe(
        self,
        topic: str,
        handler: Handler,
        *,
        durable: str | None = None,
        commit: Commit | None = None,
    ) -> Subscription:
        """Call `handler` for each event on `topic` published from now on. `durable` names a
        consumer that keeps its place across restarts where the bus persists events; at most
        one live subscription per durable name per bus (ValueError otherwise). `commit` stores
        what the handler holds before the events count as handled (see the module)."""
        ...

    async def drain(self) -> None:
        """Wait until every event accepted so far on the topics this bus subscribes to (and
        every event their handlers publish meanwhile) has been handled, and committed where the
        subscription has a commit; for tests and an orderly stop. No bound: wrap it in a
        timeout where that matters."""
        ...

    async def close(self) -> None:
        """Stop accepting events, finish delivering the ones accepted (within a bounded
        time), stop every subscription and release connections. Idempotent."""
        ...


def workload_event(change: StateChange) -> Event:
    """A lifecycle transition as it travels on the `workload-events` topic."""
    payload = {
        "workload_id": change.workload_id,
        "event": change.event.value,
        "from_state": None if change.from_state is None else change.from_state.value,
        "to_state": change.to_state.value,
        "reason": change.reason,
    }
    return Event(WORKLOAD_EVENTS, change.workload_id, change.at, payload)
