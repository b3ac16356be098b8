"""The CGMiner RPC wire: one JSON request and one JSON reply per TCP connection.

`Transport` is the seam the LuxOS client talks through; `TcpTransport` is the real one. Every
socket failure comes out as a typed `DeviceIOError` naming the device.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from typing import Any, Protocol

from hcp.adapters.devices.errors import (
    DeviceConnectionReset,
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
    return json.dumps(body).encode()


def decode_reply(device: str, raw: bytes) -> dict[str, Any]:
    """The JSON object in a reply; CGMiner ends replies with a NUL byte, which is dropped."""
    try:
        body = json.loads(raw.rstrip(b"\x00\r\n ").decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MalformedReply(device, f"reply is not JSON ({error}): {raw[:60]!r}") from None
    if not isinstance(body, dict):
        raise MalformedReply(device, f"reply is JSON but not an object: {raw[:60]!r}")
    return body


class TcpTransport:
    """Opens a connection per request, as CGMiner's API expects; `timeout_s` covers it all."""

    def __init__(self, timeout_s: float = 3.0) -> None:
        self.timeout_s = timeout_s

    async def exchange(self, host: str, port: int, request: bytes) -> bytes:
        device = f"{host}:{port}"
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._roundtrip(host, port, request)
        except TimeoutError:
            raise DeviceTimeout(device, f"no reply within {self.timeout_s:g} s") from None
        except (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError) as error:
            raise DeviceConnectionReset(device, f"connection reset ({error})") from None
        except OSError as error:
            raise DeviceUnreachable(device, f"cannot connect ({error})") from None

    async def _roundtrip(self, host: str, port: int, request: bytes) -> bytes:
        reader, writer = await asyncio.open_connection(host, port, limit=MAX_REPLY_BYTES)
        try:
            writer.write(request)
            await writer.drain()
            reply = await read_reply(reader)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        if not reply:
            raise ConnectionResetError("closed without a reply")
        return reply


async def read_reply(reader: asyncio.StreamReader) -> bytes:
    """Bytes up to the NUL that ends a CGMiner reply, or to EOF for firmwares that send none."""
    try:
        return await reader.readuntil(b"\x00")
    except asyncio.IncompleteReadError as eof:
        return eof.partial
    except asyncio.LimitOverrunError:
        # Too big to be a miner's reply: treat as garbage rather than buffer without end.
        return b"\xff oversized reply"
