"""Fixtures shared by every test layer."""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

SHARED_DATA = Path(os.environ.get("HCP_SHARED_DATA", Path(__file__).parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real market data folder (../shared/data); skips with a clear message where absent."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CI must have the shared market data at {SHARED_DATA}")
        pytest.skip(f"real market data not found at {SHARED_DATA} (set HCP_SHARED_DATA)")
    return SHARED_DATA


POSTGRES_URL = os.environ.get(
    "HCP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
TEST_SECRET = "test-secret-not-a-placeholder"


def _postgres_reachable(url: str) -> str | None:
    """None when PostgreSQL answers at `url`, else why not."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    finally:
        engine.dispose()
    return None


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL test database; CI (HCP_REQUIRE_POSTGRES or CI set) fails rather than skips."""
    problem = _postgres_reachable(POSTGRES_URL)
    return _required(
        POSTGRES_URL, problem, f"PostgreSQL not reachable at {POSTGRES_URL}", "POSTGRES"
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a private schema in the PostgreSQL test DB."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hcp.db'}"
        return
    from sqlalchemy import create_engine, text

    base = request.getfixturevalue("postgres_url")
    schema = f"hcp_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{base}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


NATS_URL = os.environ.get("HCP_TEST_NATS_URL", "nats://127.0.0.1:4222")


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
        problem += " (set HCP_TEST_NATS_URL)"
    return _required(NATS_URL, problem, f"NATS not reachable at {NATS_URL}", "NATS")


def _required(url: str, problem: str | None, what: str, service: str) -> str:
    """`url` when the server answers (`problem` None); else the test fails where the server
    is required (CI, or HCP_REQUIRE_<service> set) and is skipped elsewhere, saying why."""
    if problem is None:
        return url
    message = f"{what}: {problem}"
    if os.environ.get(f"HCP_REQUIRE_{service}") or os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
