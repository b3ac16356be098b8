"""The live loop of `hcp up` in-process, for integration tests: a site of simulated miners and
GPU nodes on a manual clock, its control loop, and an API client logged in as the admin."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from hcp import bootstrap
from hcp.adapters.clock import ManualClock
from hcp.http.app import create_app
from tests.api.conftest import START, make_settings


@dataclass
class LiveSite:
    runtime: bootstrap.Runtime
    live: bootstrap.Live
    clock: ManualClock
    api: httpx.AsyncClient
    admin: dict[str, str]

    async def restart(self) -> None:
        """Stop the control loop and the simulated site and start them again on the same
        store, as a restarted controller does (the simulated miners start afresh)."""
        await bootstrap.stop_live(self.live)
        self.live = await bootstrap.start_live(self.runtime)


@asynccontextmanager
async def live_site(
    tmp_path: Path, database: str | None = None, **overrides: object
) -> AsyncIterator[LiveSite]:
    """A fresh database (`database`, else SQLite under `tmp_path`), provisioned with the
    settings `overrides` (site sizes, planner, bus, ...), the live loop started; all stopped on
    the way out."""
    clock = ManualClock(START)
    database = database or f"sqlite:///{tmp_path / 'hcp.db'}"
    runtime = bootstrap.build(make_settings(database, tmp_path / "var", **overrides), clock)
    keys = bootstrap.prepare(runtime)
    assert keys is not None
    live = await bootstrap.start_live(runtime)
    transport = httpx.ASGITransport(app=create_app(runtime.platform))
    api = httpx.AsyncClient(transport=transport, base_url="http://hcp")
    site = LiveSite(runtime, live, clock, api, {"Authorization": f"Bearer {keys['admin']}"})
    try:
        yield site
    finally:
        await api.aclose()
        await bootstrap.stop_live(site.live)
        runtime.close()
