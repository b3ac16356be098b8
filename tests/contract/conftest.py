"""Fixtures for contract tests that need a server besides the ones the tests start themselves."""

from __future__ import annotations

import json
import os
import socket
from urllib.parse import urlsplit

import pytest

NATS_URL = os.environ.get("HCP_TEST_NATS_URL", "nats://127.0.0.1:4222")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "nats: needs the NATS server with JetStream")


def _nats_problem(url: str) -> str | None:
    """None when a NATS server with JetStream enabled answers at `url`, else why not."""
    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or 4222)
    try:
        with socket.create_connection(address, timeout=2) as sock:
            greeting = sock.makefile("rb").readline()
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    if not greeting.startswith(b"INFO "):
        return f"not a NATS server (it said {greeting[:40]!r})"
    if not json.loads(greeting[5:]).get("jetstream"):
        return "JetStream is not enabled (start nats-server with -js)"
    return None


@pytest.fixture(scope="session")
def nats_url() -> str:
    """The NATS test server; CI (HCP_REQUIRE_NATS or CI set) fails rather than skips."""
    problem = _nats_problem(NATS_URL)
    if problem is not None:
        message = f"NATS not reachable at {NATS_URL}: {problem} (set HCP_TEST_NATS_URL)"
        if os.environ.get("HCP_REQUIRE_NATS") or os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return NATS_URL
