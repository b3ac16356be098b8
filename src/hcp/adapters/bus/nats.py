"""EventBus on NATS JetStream: at-least-once delivery through one stream and pull consumers.

Topic `t` is subject `<prefix>t` in one stream covering `<prefix>>` (file storage, limits
retention, `max_age_s`). Every publish waits for the stream's acknowledgement and carries the
event id as `Nats-Msg-Id`, so a retried publish within the duplicate window is stored once.
Each subscription is a pull consumer (durable if named, else ephemeral and deleted on
unsubscribe) drained by one task: an event is acked once its handler has returned and so has
the subscription's commit (if any) after its batch; it is naked with a delay when either
raises, and terminated after `max_deliver` attempts or if it does not decode.
A new consumer starts at events published after it was created; a durable one resumes where it
stopped, and buses (processes) subscribing with the same durable name share it: each
event goes to one of them. Reconnection is nats-py's (forever, every `reconnect_wait_s`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass, replace
from types import TracebackType

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    PubAck,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from hcp.adapters.bus.consumer import stop_consumer
from hcp.services.events import (
    BusClosed,
    BusStats,
    BusUnavailable,
    Commit,
    Event,
    Handler,
    MalformedEvent,
    PublishFailed,
    check_name,
    decode,
    encode,
)
from hcp.urls import redact_url

log = logging.getLogger(__name__)

MSG_ID = "Nats-Msg-Id"
DRAIN_POLL_S = 0.02


@dataclass(frozen=True, slots=True)
class JetStreamSettings:
    """Tuning of the JetStream bus; every duration in seconds.

    `max_age_s` bounds how long the stream keeps events (a durable consumer away for longer
    misses the older ones); `ack_wait_s` is how long a delivered, unsettled event waits before
    redelivery; `nak_delay_s` how long a failed one waits; `ephemeral_idle_s` how long the server
    keeps an ephemeral consumer nobody pulls from (a process that died without unsubscribing).
    `fetch_batch` is how many events a consumer takes at once, and so how many a subscription's
    commit writes in one transaction when a backlog waits: 1000, the server's default limit of
    unacknowledged events per consumer (256 made four times as many transactions a poll).
    """

    max_age_s: float = 3600.0
    duplicate_window_s: float = 120.0
    ack_wait_s: float = 30.0
    nak_delay_s: float = 1.0
    max_deliver: int = 5
    fetch_batch: int = 1000
    fetch_wait_s: float = 5.0
    publish_timeout_s: float = 10.0
    max_pending_publishes: int = 4000
    ephemeral_idle_s: float = 300.0
    connect_timeout_s: float = 5.0
    reconnect_wait_s: int = 1
    close_grace_s: float = 5.0


class JetStreamSubscription:
    """A handler bound to a pull consumer, and the task that feeds one to the other."""

    def __init__(
        self,
        bus: NatsJetStreamBus,
        topic: str,
        handler: Handler,
        durable: str | None,
        consumer: str,
        pull: JetStreamContext.PullSubscription,
        commit: Commit | None = None,
    ) -> None:
        self._bus = bus
        self._topic = topic
        self._durable = durable
        self.handler = handler
        self.commit = commit
        self.consumer = consumer
        self.pull = pull
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
        """Stop fetching; a durable consumer keeps its place, an ephemeral one is deleted."""
        await self._bus._detach(self)


class NatsJetStreamBus:
    """An `EventBus` on NATS JetStream. `await bus.connect()` (or `async with`) before use."""

    def __init__(
        self,
        url: str | Sequence[str] = "nats://127.0.0.1:4222",
        *,
        stream: str = "HCP",
        prefix: str = "hcp.",
        settings: JetStreamSettings | None = None,
    ) -> None:
        if not prefix.endswith(".") or any(c in prefix for c in " *>"):
            raise ValueError(f"subject prefix {prefix!r} must end with '.' and hold no wildcard")
        servers = url.split(",") if isinstance(url, str) else list(url)
        self.servers = [server.strip() for server in servers]
        self.url = ",".join(redact_url(server) for server in self.servers)
        """The servers, for messages and logs: any password is masked."""
        self.stream = stream
        self.prefix = prefix
        self.settings = settings or JetStreamSettings()
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._subscriptions: list[JetStreamSubscription] = []
        self._durables: set[str] = set()
        self._stats = BusStats()
        self._closed = False
        self._connected = False  # once: errors before it are the connect's, not a lost link
        self._connect_error: Exception | None = None

    @property
    def stats(self) -> BusStats:
        return replace(self._stats)

    async def connect(self) -> NatsJetStreamBus:
        """Connect and create (or update) the stream; BusUnavailable (a ConnectionError) if
        NATS does not answer within `connect_timeout_s`."""
        if self._closed:
            raise BusClosed(f"the NATS event bus on stream {self.stream} is closed")
        if self._nc is not None:
            return self
        nc = Client()
        try:
            await asyncio.wait_for(self._open(nc), self.settings.connect_timeout_s)
            js = nc.jetstream(publish_async_max_pending=self.settings.max_pending_publishes)
            await self._ensure_stream(js)
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            await nc.close()
            raise BusUnavailable(self.url, self._why(exc)) from exc
        self._nc, self._js = nc, js
        self._connected = True
        return self

    async def publish(self, event: Event) -> None:
        js = self._jetstream()
        data = encode(event)
        try:
            await js.publish(
                self.subject(event.topic),
                data,
                timeout=self.settings.publish_timeout_s,
                headers={MSG_ID: event.id},
            )
        except nats.errors.Error as exc:
            raise PublishFailed(1, 1, repr(exc)) from exc
        self._stats.published += 1

    async def publish_many(self, events: Iterable[Event]) -> None:
        """Encode every event (TypeError before anything is sent), send them all without
        waiting, then wait for all the stream's acks together."""
        js = self._jetstream()
        batch = [(self.subject(e.topic), encode(e), {MSG_ID: e.id}) for e in events]
        acks: list[asyncio.Future[PubAck]] = []
        try:
            for subject, data, headers in batch:
                acks.append(await js.publish_async(subject, data, headers=headers))
        except nats.errors.Error as exc:
            _cancel(acks)
            raise PublishFailed(len(batch), len(batch), repr(exc)) from exc
        await self._await_acks(acks)

    async def subscribe(
        self,
        topic: str,
        handler: Handler,
        *,
        durable: str | None = None,
        commit: Commit | None = None,
    ) -> JetStreamSubscription:
        """Attach `handler` to a pull consumer for `topic`. A durable name is unique within the
        stream: ValueError if that consumer exists for another topic. `commit` is awaited
        after each batch of events is handled, before any of them is acknowledged."""
        js = self._jetstream()
        check_name("topic", topic)
        if durable is not None:
            self._reserve(durable)
        try:
            consumer = await self._ensure_consumer(js, topic, durable)
            pull = await js.pull_subscribe_bind(consumer=consumer, stream=self.stream)
        except BaseException:
            if durable is not None:
                self._durables.discard(durable)
            raise
        subscription = JetStreamSubscription(self, topic, handler, durable, consumer, pull, commit)
        subscription.task = asyncio.create_task(
            self._consume(subscription), name=f"hcp-bus:{topic}:{consumer}"
        )
        self._subscriptions.append(subscription)
        return subscription

    async def drain(self) -> None:
        """Wait until each consumer of this bus has nothing pending and nothing awaiting its
        ack, all of them in one pass: every event stored so far on a subscribed topic was
        then handled (here, or in a process sharing a durable name). A handler's own
        publishes are stored before its event is acknowledged, so one pass that finds every
        consumer idle has seen them too."""
        js = self._jetstream()
        while True:
            for subscription in list(self._subscriptions):
                try:
                    info = await js.consumer_info(self.stream, subscription.consumer)
                except nats.js.errors.NotFoundError:  # unsubscribed meanwhile
                    continue
                if info.num_pending or info.num_ack_pending:
                    break
            else:
                return
            await asyncio.sleep(DRAIN_POLL_S)

    async def close(self) -> None:
        """Stop every subscription (a handler still busy after `close_grace_s` is cancelled; its
        event is redelivered later), then drain the connection (flushes acks) and close it."""
        if self._closed:
            return
        self._closed = True
        for subscription in list(self._subscriptions):
            await self._detach(subscription, grace_s=self.settings.close_grace_s)
        nc, self._nc, self._js = self._nc, None, None
        if nc is None:
            return
        try:
            await nc.drain()
        except (TimeoutError, nats.errors.Error) as exc:
            log.warning("NATS drain failed (%r); closing", exc)
            await nc.close()

    def _reserve(self, durable: str) -> None:
        check_name("durable name", durable)
        if durable in self._durables:
            raise ValueError(f"durable {durable!r} already has a live subscription")
        self._durables.add(durable)

    def subject(self, topic: str) -> str:
        """The NATS subject of `topic`."""
        return f"{self.prefix}{topic}"

    async def __aenter__(self) -> NatsJetStreamBus:
        return await self.connect()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _open(self, nc: Client) -> None:
        await nc.connect(
            self.servers,
            name="hcp",
            max_reconnect_attempts=-1,
            reconnect_time_wait=self.settings.reconnect_wait_s,
            error_cb=self._log_error,
            disconnected_cb=self._log_disconnected,
            reconnected_cb=_log_reconnected,
        )

    def _why(self, exc: BaseException) -> str:
        """Why connecting failed: nats-py retries a refused connection until the timeout, so
        the error it last reported says more than the timeout itself."""
        last = self._connect_error
        if isinstance(exc, TimeoutError) and last is not None:
            return f"no connection within {self.settings.connect_timeout_s:g} s ({last!r})"
        if isinstance(exc, TimeoutError):
            return f"no answer within {self.settings.connect_timeout_s:g} s"
        return f"NATS JetStream: {exc!r}"

    async def _log_error(self, exc: Exception) -> None:
        if self._connected:
            log.warning("NATS error: %r", exc)
        else:  # said once, by connect's BusUnavailable
            self._connect_error = exc
            log.debug("connecting to NATS at %s: %r", self.url, exc)

    async def _log_disconnected(self) -> None:
        if self._connected and not self._closed:
            log.warning("NATS at %s disconnected; nats-py is reconnecting", self.url)

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        config = StreamConfig(
            name=self.stream,
            subjects=[f"{self.prefix}>"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            max_age=self.settings.max_age_s,
            duplicate_window=min(self.settings.duplicate_window_s, self.settings.max_age_s),
        )
        try:
            await js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            await js.add_stream(config)
        else:
            await js.update_stream(config)

    async def _ensure_consumer(self, js: JetStreamContext, topic: str, durable: str | None) -> str:
        """The name of a pull consumer for `topic`: the durable one (created if new) or a
        fresh ephemeral one."""
        subject = self.subject(topic)
        if durable is not None:
            try:
                info = await js.consumer_info(self.stream, durable)
            except nats.js.errors.NotFoundError:
                pass
            else:
                if info.config.filter_subject != subject:
                    raise ValueError(f"durable {durable!r} consumes {info.config.filter_subject}")
                return durable
        name = durable or f"ephemeral-{uuid.uuid4().hex}"
        config = ConsumerConfig(
            name=name,
            durable_name=durable,
            deliver_policy=DeliverPolicy.NEW,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.settings.ack_wait_s,
            max_deliver=self.settings.max_deliver,
            filter_subject=subject,
            inactive_threshold=None if durable else self.settings.ephemeral_idle_s,
        )
        await js.add_consumer(self.stream, config)
        return name

    async def _consume(self, subscription: JetStreamSubscription) -> None:
        pending = 0
        while not subscription.stopping:
            batch = await self._fetch(subscription, pending)
            subscription.busy = True
            try:
                await self._handle_batch(subscription, batch)
            finally:
                subscription.busy = False
            pending = batch[-1].metadata.num_pending if batch else 0

    async def _fetch(self, subscription: JetStreamSubscription, pending: int) -> list[Msg]:
        """The next messages: a batch when a backlog is known (answered at once), else one
        lingering request for a single message, so an idle subscriber wakes on the first."""
        want = min(max(pending, 1), self.settings.fetch_batch)
        try:
            return await subscription.pull.fetch(want, timeout=self.settings.fetch_wait_s)
        except nats.errors.TimeoutError:
            return []
        except Exception as exc:  # nats-py is reconnecting, or the consumer was deleted
            log.warning("fetch on %s failed (%r); retrying", subscription.consumer, exc)
            await asyncio.sleep(self.settings.reconnect_wait_s)
            return []

    async def _handle_batch(self, subscription: JetStreamSubscription, batch: list[Msg]) -> None:
        """Hand each message to the handler, then commit, then acknowledge the handled ones
        (or take them all back if the commit failed)."""
        handled: list[tuple[Msg, Event]] = []
        for index, msg in enumerate(batch):
            if subscription.stopping:
                for unhandled in batch[index:]:
                    await _reply(unhandled.nak())
                break
            event = await self._handle(subscription.handler, msg)
            if event is not None:
                handled.append((msg, event))
        if handled and subscription.commit is not None:
            try:
                await subscription.commit()
            except Exception:
                self._stats.handler_errors += 1
                log.exception(
                    "commit failed on %s after %d events; they will come again",
                    subscription.topic,
                    len(handled),
                )
                for msg, event in handled:
                    await self._reject(msg, event, msg.metadata.num_delivered)
                return
        self._stats.delivered += len(handled)
        for msg, _ in handled:
            await _reply(msg.ack())

    async def _handle(self, handler: Handler, msg: Msg) -> Event | None:
        """The event `handler` took from `msg`, to be acknowledged; None when it was refused
        (and so terminated or taken back here)."""
        try:
            event = decode(msg.data)
        except MalformedEvent as exc:
            self._stats.malformed += 1
            log.warning("terminating undecodable message on %s: %s", msg.subject, exc)
            await _reply(msg.term())
            return None
        attempt = msg.metadata.num_delivered
        if attempt > 1:
            self._stats.redelivered += 1
        try:
            await handler(event)
        except Exception:
            self._stats.handler_errors += 1
            log.exception(
                "handler failed on %s event %s (attempt %d)", event.topic, event.id, attempt
            )
            await self._reject(msg, event, attempt)
            return None
        return event

    async def _reject(self, msg: Msg, event: Event, attempt: int) -> None:
        if attempt >= self.settings.max_deliver:
            log.error("giving up on %s event %s after %d attempts", event.topic, event.id, attempt)
            await _reply(msg.term())
        else:
            await _reply(msg.nak(delay=self.settings.nak_delay_s))

    async def _await_acks(self, acks: list[asyncio.Future[PubAck]]) -> None:
        if not acks:
            return
        done, pending = await asyncio.wait(acks, timeout=self.settings.publish_timeout_s)
        _cancel(pending)
        failures = [_failure(ack) for ack in done if ack.cancelled() or ack.exception()]
        self._stats.published += len(done) - len(failures)
        if pending or failures:
            reason = failures[0] if failures else "timed out waiting for acks"
            raise PublishFailed(len(pending) + len(failures), len(acks), reason)

    async def _detach(
        self, subscription: JetStreamSubscription, grace_s: float | None = None
    ) -> None:
        """Stop fetching for `subscription` (a batch in hand gets `grace_s` seconds; None: as
        long as it takes), unbind it and delete its consumer if ephemeral."""
        if subscription not in self._subscriptions:
            return
        self._subscriptions.remove(subscription)
        if subscription.durable is not None:
            self._durables.discard(subscription.durable)
        subscription.stopping = True
        await stop_consumer(subscription.task, busy=subscription.busy, grace_s=grace_s)
        try:
            await subscription.pull.unsubscribe()
            if subscription.durable is None and self._js is not None:
                await self._js.delete_consumer(self.stream, subscription.consumer)
        except nats.errors.Error as exc:
            log.warning("cleaning up consumer %s failed: %r", subscription.consumer, exc)

    def _jetstream(self) -> JetStreamContext:
        if self._closed:
            raise BusClosed(f"the NATS event bus on stream {self.stream} is closed")
        if self._js is None:
            raise RuntimeError("NatsJetStreamBus.connect() has not been awaited")
        return self._js


async def _reply(reply: Awaitable[None]) -> None:
    """Send an ack/nak/term; a lost one only means a redelivery after the ack wait."""
    try:
        await reply
    except nats.errors.Error as exc:
        log.warning("could not settle a message: %r", exc)


def _cancel(futures: Iterable[asyncio.Future[PubAck]]) -> None:
    for future in futures:
        future.cancel()


def _failure(ack: asyncio.Future[PubAck]) -> str:
    return "cancelled" if ack.cancelled() else repr(ack.exception())


async def _log_reconnected() -> None:
    log.info("NATS reconnected")
