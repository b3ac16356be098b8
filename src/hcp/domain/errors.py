"""The error hierarchy, drawn once. Errors carry their context; only the HTTP layer maps them
to status codes and only the CLI maps them to exit codes."""

from __future__ import annotations


class HcpError(Exception):
    """Base of every error HCP raises on purpose."""


class ValidationError(HcpError):
    """Input that breaks a domain rule; `field` names the offending field (dotted path)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFound(HcpError):
    """An object that does not exist, or that the caller may not see (both answer 404)."""

    def __init__(self, kind: str, object_id: str) -> None:
        super().__init__(f"{kind} {object_id!r} not found")
        self.kind = kind
        self.object_id = object_id


class Forbidden(HcpError):
    """The caller is known but may not do this."""


class Unauthenticated(HcpError):
    """No credentials, or credentials that match no active key."""


class RateLimited(HcpError):
    """Too many requests for one key; `retry_after_s` says when the next one is allowed."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"rate limit exceeded; retry in {retry_after_s:.1f} s")
        self.retry_after_s = retry_after_s


class Conflict(HcpError):
    """The request is valid but clashes with the current state."""


class Duplicate(Conflict):
    """A row with the same key was stored meanwhile (two requests raced to create it)."""


class InvalidTransition(Conflict):
    """A lifecycle event the transition table does not allow from the current state."""

    def __init__(self, state: str, event: str, workload_id: str | None = None) -> None:
        subject = f"workload {workload_id}" if workload_id else "a workload"
        super().__init__(f"cannot {event} {subject} that is {state}")
        self.state = state
        self.event = event
        self.workload_id = workload_id


class StateChanged(Conflict):
    """A workload's stored state changed since it was read (another request or process moved
    it): a transition computed from the old state must not overwrite the new one."""

    def __init__(self, workload_id: str, expected: str, found: str) -> None:
        super().__init__(f"workload {workload_id} is {found} now, no longer {expected}")
        self.workload_id = workload_id
        self.expected = expected
        self.found = found


class DataError(HcpError):
    """Bad input data in a file: names the file, line and column (1-based) where known."""

    def __init__(
        self, path: str, message: str, line: int | None = None, column: str | int | None = None
    ) -> None:
        where = path
        if line is not None:
            where += f":{line}"
        if column is not None:
            where += f" column {column}"
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line
        self.column = column
        self.message = message
