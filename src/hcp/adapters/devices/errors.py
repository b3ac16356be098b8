"""Errors a device driver raises. Each names the device (`host:port`) so a caller can mark
exactly that device degraded and carry on with the rest of the fleet."""

from __future__ import annotations

from hcp.domain.errors import HcpError


class DeviceError(HcpError):
    """Something went wrong talking to `device`."""

    def __init__(self, device: str, message: str) -> None:
        super().__init__(f"{device}: {message}")
        self.device = device
        self.message = message


class DeviceIOError(DeviceError):
    """The exchange itself failed (worth retrying): no answer, a broken or garbled one."""


class DeviceUnreachable(DeviceIOError):
    """Nothing accepts the connection (refused, no route): the device is off or not there."""


class DeviceTimeout(DeviceIOError):
    """The device did not answer within the timeout."""


class DeviceConnectionReset(DeviceIOError):
    """The device dropped the connection before a whole reply arrived."""


class MalformedReply(DeviceIOError):
    """The reply is not the JSON the protocol promises, or lacks a field the driver needs."""


class CommandRejected(DeviceError):
    """The device understood the command and refused it (a STATUS "E" block)."""

    def __init__(self, device: str, command: str, code: int | None, message: str) -> None:
        super().__init__(device, f"{command} refused (code {code}): {message}")
        self.command = command
        self.code = code
        self.reason = message


class SessionUnavailable(CommandRejected):
    """Another client holds the miner's only session; retry after it ends or expires."""
