"""An app on a fresh database (SQLite and PostgreSQL), a manual clock, and the demo keys."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hcp import bootstrap
from hcp.adapters.clock import ManualClock
from hcp.config import Settings
from hcp.domain.identity import Customer, Role
from hcp.http.app import create_app
from hcp.services.auth import issue_key
from tests.conftest import TEST_SECRET

START = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


@dataclass
class Api:
    client: TestClient
    runtime: bootstrap.Runtime
    clock: ManualClock
    admin: dict[str, str]
    customer: dict[str, str]

    def as_(self, key: dict[str, str]) -> Api:
        self.client.headers["Authorization"] = key["Authorization"]
        return self

    def new_customer(self, customer_id: str) -> dict[str, str]:
        """Store another customer with its own key; returns the auth header."""
        with self.runtime.unit_of_work() as uow:
            uow.customers.add(Customer(customer_id, customer_id.title(), self.clock.now()))
            issued = issue_key(
                uow,
                name=customer_id,
                role=Role.CUSTOMER,
                customer_id=customer_id,
                now=self.clock.now(),
            )
            uow.commit()
        return {"Authorization": f"Bearer {issued.secret}"}


def make_settings(database_url: str, var_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "env": "test",
        "secret_key": TEST_SECRET,
        "database_url": database_url,
        "var_dir": var_dir,
        "max_body_bytes": 16 * 1024,
        "rate_limit_per_second": 0,  # the manual clock never refills a bucket
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    clock = ManualClock(START)
    runtime = bootstrap.build(make_settings(database_url, tmp_path / "var"), clock)
    keys = bootstrap.prepare(runtime)
    assert keys is not None
    feed = bootstrap.market_feed(runtime.settings, START)
    snapshot = feed.next_snapshot()
    assert snapshot is not None
    runtime.platform.market.record(snapshot, "simulator")
    app = create_app(runtime.platform, max_body_bytes=runtime.settings.max_body_bytes)
    with TestClient(app) as client:
        yield Api(
            client,
            runtime,
            clock,
            admin={"Authorization": f"Bearer {keys['admin']}"},
            customer={"Authorization": f"Bearer {keys['customer']}"},
        )
    runtime.close()
