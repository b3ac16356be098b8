"""Errors of the GPU drivers (DCGM scrape, node agent), on the shared device-error hierarchy.

`device` is the node's name. A transport failure is a `DeviceTimeout`, `DeviceUnreachable`,
`DeviceConnectionReset` or `DeviceIOError`; a node that answers 503 is `NodeDown` (a kind of
unreachable); an unreadable answer is a `MalformedReply`; a command the node agent refuses is an
`AgentRejected` whose `code` is the HTTP status.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from hcp.adapters.devices.errors import (
    CommandRejected,
    DeviceConnectionReset,
    DeviceIOError,
    DeviceTimeout,
    DeviceUnreachable,
)


class NodeDown(DeviceUnreachable):
    """The node answered 503 Service Unavailable: it is there but serves nothing."""


class AgentRejected(CommandRejected):
    """The node agent refused `command` with HTTP status `code`; `workload_id` when one is named."""

    def __init__(
        self, device: str, command: str, code: int, message: str, workload_id: str | None = None
    ) -> None:
        super().__init__(device, command, code, message)
        self.workload_id = workload_id


class GpuUnavailable(AgentRejected):
    """A start was refused: a requested GPU is busy, unhealthy or lost (409)."""


class WorkloadExists(AgentRejected):
    """A start was refused: the node already has a workload with this id (409)."""


class WorkloadConflict(AgentRejected):
    """The workload cannot do that now: not checkpointable, or no longer running (409)."""


class WorkloadNotFound(AgentRejected):
    """The node has no workload with this id (404)."""


class RequestInvalid(AgentRejected):
    """The node agent found the request malformed or out of range (422)."""


@contextmanager
def transport_errors(device: str) -> Iterator[None]:
    """Turn httpx transport failures inside the block into device errors naming `device`."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise DeviceTimeout(device, f"no answer in time ({type(exc).__name__})") from exc
    except httpx.ConnectError as exc:
        raise DeviceUnreachable(device, f"cannot connect: {exc}") from exc
    except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError) as exc:
        raise DeviceConnectionReset(device, f"connection broke: {exc}") from exc
    except httpx.TransportError as exc:
        raise DeviceIOError(device, f"{type(exc).__name__}: {exc}") from exc


def check_served(device: str, response: httpx.Response) -> None:
    """NodeDown on a 503; any other status outside 2xx and 4xx is a DeviceIOError."""
    status = response.status_code
    if status == 503:
        raise NodeDown(device, f"service unavailable: {response.text[:200]}")
    if not 200 <= status < 500:
        raise DeviceIOError(device, f"unexpected HTTP {status} from {response.request.url}")
