"""The CGMiner RPC wire: one JSON request and one JSON reply per TCP connection.

`Transport` is the seam the LuxOS client talks through; `TcpTransport` is the real one. Every
socket failure comes out as a typed `DeviceIOError` naming the device.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any, Protocol, cast

import orjson

from hcp.adapters.devices.errors import (
    DeviceConnectionReset,
    DeviceIOError,
    DeviceTimeout,
    DeviceUnreachable,
    MalformedReply,
)

MAX_REPLY_BYTES = 4 * 1024 * 1024


class Transport(Protocol):
    async def exchange(self, host: str, port: int, request: bytes) -> bytes:
        """Send one request and return the raw reply bytes; DeviceIOError on failure."""
        ...


def encode_request(command: str, params: Sequence[str] = ()) -> bytes:
    """`{"command": ..., "parameter": "a,b"}` as bytes (no parameter key when there are none)."""
    body: dict[str, str] = {"command": command}
    if params:
        body["parameter"] = ",".join(params)
    return orjson.dumps(body)


def decode_reply(device: str, raw: bytes) -> dict[str, Any]:
    """The JSON object in a reply; CGMiner ends replies with a NUL byte, which is dropped."""
    text = raw.rstrip(b"\x00\r\n ")
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        try:  # what orjson refuses and json takes: NaN, Infinity, integers beyond 64 bits
            body = json.loads(text.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise MalformedReply(device, f"reply is not JSON ({error}): {raw[:60]!r}") from None
    if not isinstance(body, dict):
        raise MalformedReply(device, f"reply is JSON but not an object: {raw[:60]!r}")
    return body


def device_error(device: str, error: Exception) -> DeviceIOError:
    """The typed error for an exchange with `device` that failed with `error` (not a timeout):
    a reset, else a connection that could not be made, else what the socket layer raised."""
    if isinstance(error, ConnectionResetError | BrokenPipeError | asyncio.IncompleteReadError):
        return DeviceConnectionReset(device, f"connection reset ({error})")
    if isinstance(error, OSError):
        return DeviceUnreachable(device, f"cannot connect ({error})")
    return DeviceIOError(device, repr(error))


class TcpTransport:
    """Opens a connection per request, as CGMiner's API expects; `timeout_s` covers it all."""

    def __init__(self, timeout_s: float = 3.0) -> None:
        self.timeout_s = timeout_s

    async def exchange(self, host: str, port: int, request: bytes) -> bytes:
        try:
            return await self._roundtrip(host, port, request)
        except TimeoutError:
            raise DeviceTimeout(f"{host}:{port}", f"no reply within {self.timeout_s:g} s") from None
        except (OSError, asyncio.IncompleteReadError) as error:
            raise device_error(f"{host}:{port}", error) from None

    async def _roundtrip(self, host: str, port: int, request: bytes) -> bytes:
        """One exchange under one timer. Once connected, the timer fails the reply; while
        connecting, it cancels this task and the cancellation becomes a TimeoutError, as
        `asyncio.timeout` does, at a third of its cost (it runs for every exchange with
        every miner: scripts/bench_curtail.py)."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None, "an exchange runs inside a task"
        cancelling = task.cancelling()
        done: asyncio.Future[bytes] = loop.create_future()
        exchange = _Exchange(request, done)
        timer = loop.call_later(self.timeout_s, exchange.expire, task)
        try:
            try:
                transport, _ = await loop.create_connection(lambda: exchange, host, port)
            except asyncio.CancelledError:
                # Only a cancel of the timer's own counts as the timeout; another one, even
                # beside a timer that fired after connecting, stays a cancel.
                if exchange.cancelled_connect and task.uncancel() <= cancelling:
                    raise TimeoutError from None
                if done.done():
                    done.exception()  # a timeout that lost to the cancel: seen, not logged
                raise
            try:
                reply = await done
            finally:
                transport.close()  # closing twice is harmless; on a timeout this hangs up
        finally:
            timer.cancel()
        if not reply:
            raise ConnectionResetError("closed without a reply")
        return reply


class _Exchange(asyncio.Protocol):
    """One CGMiner exchange as an asyncio protocol: write the request once connected, collect
    the reply up to its NUL (or EOF, for firmwares that send none), then hang up.

    A protocol rather than a stream pair: no reader, writer or drain per connection, which
    is a third of the client's CPU per exchange at fleet scale (scripts/bench_curtail.py).
    """

    def __init__(self, request: bytes, done: asyncio.Future[bytes]) -> None:
        self._request = request
        self._done = done
        self._reply = bytearray()
        self._transport: asyncio.Transport | None = None
        self.cancelled_connect = False

    def expire(self, task: asyncio.Task[Any]) -> None:
        """The exchange's time is up: fail the reply, or stop `task` connecting."""
        if self._transport is None:
            self.cancelled_connect = True
            task.cancel()
        elif not self._done.done():
            self._done.set_exception(TimeoutError())
            self._transport.abort()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self._transport = cast(asyncio.Transport, transport)
        self._transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        self._reply += data
        end = self._reply.find(b"\x00")
        if end >= 0:
            self._finish(bytes(self._reply[: end + 1]))
        elif len(self._reply) > MAX_REPLY_BYTES:
            # Too big to be a miner's reply: treat as garbage rather than buffer without end.
            self._finish(b"\xff oversized reply")

    def eof_received(self) -> bool:
        self._finish(bytes(self._reply))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._done.done():
            return
        if exc is not None:
            self._done.set_exception(exc)
        else:
            self._done.set_result(bytes(self._reply))

    def _finish(self, reply: bytes) -> None:
        if not self._done.done():
            self._done.set_result(reply)
        if self._transport is not None:
            self._transport.close()
