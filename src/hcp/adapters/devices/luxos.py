"""An asyncio client for one LuxOS miner's CGMiner RPC API (TCP 4028).

Reads need no session. Commands that change the miner (`curtail`, `profileset`, `atmset`) need
LuxOS's single session: the client logs on once, reuses the id, and logs on again when the miner
says the session expired. Failed exchanges are retried with exponential backoff; a semaphore
shared by every client of a fleet bounds how many exchanges are in flight at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from hcp.adapters.clock import SystemClock
from hcp.adapters.devices import translate
from hcp.adapters.devices.cgminer import TcpTransport, Transport, decode_reply, encode_request
from hcp.adapters.devices.errors import (
    CommandRejected,
    DeviceError,
    DeviceIOError,
    SessionUnavailable,
)
from hcp.aio import bounded_map
from hcp.domain.devices import AsicProfile
from hcp.domain.telemetry import AsicReading
from hcp.services.ports import Clock

log = logging.getLogger(__name__)

Payload = dict[str, Any]

READ_COMMANDS = ("summary", "power", "config", "devs", "tempctrl")
"""What `read()` asks for, in one joined request."""
SESSION_BUSY_CODE = 402


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`attempts` tries per exchange; waits `first_delay_s`, then doubles, up to `max_delay_s`."""

    attempts: int = 3
    first_delay_s: float = 0.25
    max_delay_s: float = 4.0

    def delay_s(self, failures: int) -> float:
        """Seconds to wait after the `failures`-th failed try (1-based)."""
        return float(min(self.max_delay_s, self.first_delay_s * 2 ** (failures - 1)))


class LuxosClient:
    """Talks to the miner at `host:port`.

    `timeout_s` bounds one try (connect, send, reply); `retry` says how many tries and how far
    apart. `limiter` should be one semaphore shared by all clients of a fleet (default: one
    exchange at a time for this miner). `transport` and `clock` are seams for tests.
    """

    def __init__(
        self,
        host: str,
        port: int = 4028,
        *,
        timeout_s: float = 3.0,
        retry: RetryPolicy | None = None,
        limiter: asyncio.Semaphore | None = None,
        transport: Transport | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.device = f"{host}:{port}"
        self.retry = retry or RetryPolicy()
        self._limiter = limiter or asyncio.Semaphore(1)
        self._transport = transport or TcpTransport(timeout_s)
        self._clock: Clock = clock or SystemClock()
        self._session_id: str | None = None
        self._session_lock = asyncio.Lock()

    # --- reads ----------------------------------------------------------------------------

    @property
    def transport(self) -> Transport:
        """What carries this client's exchanges (TCP from this process, or worker processes)."""
        return self._transport

    async def command(self, command: str, *params: str) -> Payload:
        """The checked reply to one command; CommandRejected when the miner refuses it."""
        reply = await self._exchange(encode_request(command, params))
        translate.check_status(self.device, command, reply)
        return reply

    async def joined(self, *commands: str) -> dict[str, Payload]:
        """The replies to several commands sent as one `a+b+c` request, keyed by command."""
        reply = await self._exchange(encode_request("+".join(commands)))
        parts = translate.split_joined(self.device, reply, commands)
        return cast(dict[str, Payload], parts)  # each a dict of the decoded reply's own

    async def summary(self) -> Payload:
        return await self.command("summary")

    async def stats(self) -> Payload:
        return await self.command("stats")

    async def power(self) -> Payload:
        return await self.command("power")

    async def config(self) -> Payload:
        return await self.command("config")

    async def devs(self) -> Payload:
        return await self.command("devs")

    async def version(self) -> Payload:
        return await self.command("version")

    async def profiles(self) -> tuple[AsicProfile, ...]:
        """The profiles the miner offers, as (name, TH/s, W)."""
        return translate.asic_profiles(self.device, await self.command("profiles"))

    async def read(self) -> AsicReading:
        """One canonical reading (state, TH/s, W, °C, profile, shares, problems) in one request."""
        replies = await self.joined(*READ_COMMANDS)
        return translate.asic_reading(self.device, self._clock.now(), replies)

    # --- commands that need a session -----------------------------------------------------

    async def curtail_sleep(self) -> None:
        """Put the miner to sleep: boards and PSU off."""
        await self._privileged("curtail", "sleep")

    async def curtail_wakeup(self) -> None:
        """Wake the miner; it ramps back to its profile over the model's wake time."""
        await self._privileged("curtail", "wakeup")

    async def set_profile(self, name: str | None = None, *, watts: float | None = None) -> str:
        """Switch profile by `name`, or to the highest within `watts` W; returns the name set."""
        if (name is None) == (watts is None):
            raise ValueError("give exactly one of a profile name or watts")
        selector = name if name is not None else f"{round(watts or 0)}W"
        try:
            reply = await self._privileged("profileset", selector)
        except SessionUnavailable:
            raise
        except CommandRejected:
            if not await self._atm_was_in_the_way():
                raise
            reply = await self._privileged("profileset", selector)
        applied = translate.first(self.device, reply, "PROFILE").get("Profile")
        return str(applied) if applied is not None else selector

    async def _atm_was_in_the_way(self) -> bool:
        """After a refused `profileset`: if ATM is on, turn it off and say so (True).

        LuxOS refuses `profileset` while ATM is enabled. ATM stays off afterwards: turned back
        on, it would step the profile up and down by temperature, away from the one asked for,
        and the dispatcher (which confirms profiles from telemetry) would fight it. The boards'
        overtemperature protection (`tempctrl`) still applies.
        """
        try:
            if not await self.atm_enabled():
                return False
        except DeviceError:
            return False  # no ATM to read: the refusal stands as it was
        log.warning("%s: ATM is on and blocks profile changes; turning it off", self.device)
        await self.set_atm(False)
        return True

    async def atm_enabled(self) -> bool:
        """Whether LuxOS's Advanced Thermal Management is on."""
        entry = translate.first(self.device, await self.command("atm"), "ATM")
        return entry.get("Enabled") is True

    async def set_atm(self, enabled: bool) -> None:
        """Turn LuxOS's Advanced Thermal Management on or off."""
        await self._privileged("atmset", f"enabled={str(enabled).lower()}")

    async def logoff(self) -> None:
        """Give the session back so other tools can act on the miner (no-op without one)."""
        async with self._session_lock:
            session_id, self._session_id = self._session_id, None
        if session_id is None:
            return
        try:
            await self.command("logoff", session_id)
        except CommandRejected as error:
            if not _is_session_error(error):
                raise  # an expired session is already given back

    async def _privileged(self, command: str, *params: str) -> Payload:
        session_id = await self._session()
        try:
            return await self.command(command, session_id, *params)
        except CommandRejected as error:
            if not _is_session_error(error):
                raise
        # LuxOS drops a session after a minute idle: log on again, once.
        log.info("%s: session %s expired, logging on again", self.device, session_id)
        async with self._session_lock:
            if self._session_id == session_id:
                self._session_id = None
        return await self.command(command, await self._session(), *params)

    async def _session(self) -> str:
        async with self._session_lock:
            if self._session_id is None:
                self._session_id = await self._logon()
            return self._session_id

    async def _logon(self) -> str:
        reply = await self._exchange(encode_request("logon"))
        try:
            translate.check_status(self.device, "logon", reply)
        except CommandRejected as error:
            if error.code == SESSION_BUSY_CODE or "another session" in error.reason.lower():
                raise SessionUnavailable(self.device, "logon", error.code, error.reason) from None
            raise
        return translate.session_id(self.device, reply)

    # --- the exchange ---------------------------------------------------------------------

    async def _exchange(self, request: bytes) -> Payload:
        failures = 0
        while True:
            try:
                # The limiter is held per try, not across backoff: a dead miner that is
                # waiting to retry must not keep a slot from the healthy ones.
                async with self._limiter:
                    raw = await self._transport.exchange(self.host, self.port, request)
                return decode_reply(self.device, raw)
            except DeviceIOError as error:
                failures += 1
                if failures >= self.retry.attempts:
                    raise
                log.debug("%s: try %d failed (%s), retrying", self.device, failures, error)
                await asyncio.sleep(self.retry.delay_s(failures))


def _is_session_error(error: CommandRejected) -> bool:
    return "session" in error.reason.lower()


async def read_all(
    clients: Sequence[LuxosClient], concurrency: int = 256
) -> list[AsicReading | DeviceError]:
    """Read every miner, `concurrency` at a time (the clients' limiter may bound the exchanges
    further); a miner that fails yields its DeviceError, not a raise. So does one whose read
    raised anything else (a bug met on its reply): that is logged, once per sweep, and the
    other miners are read all the same."""
    unexpected: list[tuple[str, Exception]] = []

    async def one(client: LuxosClient) -> AsicReading | DeviceError:
        try:
            return await client.read()
        except DeviceError as error:
            return error
        except Exception as error:
            unexpected.append((client.device, error))
            return DeviceError(client.device, f"reading failed: {type(error).__name__}: {error}")

    readings = await bounded_map(one, clients, concurrency)
    if unexpected:
        device, error = unexpected[0]
        log.error(
            "reading %d miner(s) failed unexpectedly; the first, %s:",
            len(unexpected),
            device,
            exc_info=error,
        )
    return readings
