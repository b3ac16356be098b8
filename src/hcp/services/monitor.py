"""Fleet monitoring: poll every device, publish its reading on the bus, keep the latest view,
and record statuses in the store in batches."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from typing import Any, Protocol

from hcp.domain.status import UNREACHABLE, DeviceStatus
from hcp.services.events import Event, EventBus, PublishFailed
from hcp.services.ports import UnitOfWorkFactory
from hcp.services.recording import TopicRecorder

log = logging.getLogger(__name__)


class FleetReader(Protocol):
    async def read(self) -> list[DeviceStatus]: ...


def status_payload(status: DeviceStatus) -> dict[str, Any]:
    payload = asdict(status)
    payload["at"] = status.at.isoformat()
    payload["problems"] = list(status.problems)
    return payload


def status_of(event: Event) -> DeviceStatus:
    p = event.payload
    return DeviceStatus(
        device_id=str(p["device_id"]),
        state=str(p["state"]),
        healthy=bool(p["healthy"]),
        at=event.at,
        profile=p.get("profile"),
        power_w=float(p.get("power_w") or 0.0),
        hashrate_ths=float(p.get("hashrate_ths") or 0.0),
        temperature_c=p.get("temperature_c"),
        problems=tuple(p.get("problems") or ()),
        util_pct=None if p.get("util_pct") is None else float(p["util_pct"]),
    )


class FleetMonitor:
    """Reads every device through `readers` (topic -> reader) and publishes one event each."""

    def __init__(self, readers: Mapping[str, FleetReader], bus: EventBus) -> None:
        self._readers = readers
        self._bus = bus
        self.latest: dict[str, DeviceStatus] = {}
        # Each device's last status with an answer in it: what an unreachable one last drew.
        self.last_answers: dict[str, DeviceStatus] = {}

    async def poll(self) -> list[DeviceStatus]:
        """One sweep of the whole fleet; unreachable devices come back as such, never raise.
        A bus that does not take the readings (NATS away) is logged: the control loop goes on
        with them (they are in `latest`), only their storing misses them."""
        topics = list(self._readers)
        sweeps = await asyncio.gather(*(self._readers[t].read() for t in topics))
        events = []
        for topic, statuses in zip(topics, sweeps, strict=True):
            for status in statuses:
                self.latest[status.device_id] = status
                if status.state != UNREACHABLE:
                    self.last_answers[status.device_id] = status
                events.append(Event(topic, status.device_id, status.at, status_payload(status)))
        try:
            await self._bus.publish_many(events)
        except PublishFailed as error:
            log.warning("fleet readings not stored: %s", error)
        return [s for sweep in sweeps for s in sweep]


class StatusRecorder(TopicRecorder[dict[str, DeviceStatus]]):
    """A bus handler that keeps the newest status per device of each topic and writes them in
    batches (see `hcp.services.recording` for when an event counts as stored)."""

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        super().__init__()
        self._uow = uow
        self._pending: dict[str, dict[str, DeviceStatus]] = {}

    async def handle(self, event: Event) -> None:
        self._pending.setdefault(event.topic, {})[event.key] = status_of(event)

    def _topics(self) -> list[str]:
        return list(self._pending)

    def _take(self, topic: str) -> dict[str, DeviceStatus]:
        return self._pending.pop(topic, {})

    def _write(self, batches: Iterable[dict[str, DeviceStatus]]) -> int:
        statuses = [status for batch in batches for status in batch.values()]
        if statuses:
            with self._uow() as uow:
                uow.fleet.update_statuses(statuses)
                uow.commit()
        return len(statuses)
