"""`lead`: a site's control loop runs only while this process holds the site; a lost lead stops
it before the site is let go, and the process stands by until it can take the site again."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

import pytest

from hcp.services.leadership import lead

CHECK_S = 0.01


class Site:
    """Leadership of one site shared by fake processes: `holder` is who holds it."""

    def __init__(self) -> None:
        self.holder: object | None = None
        self.events: list[str] = []


class FakeLeadership:
    """One process's hold on a `Site`; the test takes it away or makes the check hang."""

    site_id = "site-1"

    def __init__(self, site: Site, name: str) -> None:
        self.site = site
        self.name = name
        self.hang = threading.Event()  # set: `still_held` does not answer until released
        self.unhang = threading.Event()

    @property
    def held(self) -> bool:
        return self.site.holder is self

    def try_acquire(self) -> bool:
        if self.site.holder is None:
            self.site.holder = self
            self.site.events.append(f"{self.name} acquired")
        return self.held

    def still_held(self) -> bool:
        if self.hang.is_set():
            self.unhang.wait(5)
        return self.held

    def release(self) -> None:
        if self.held:
            self.site.holder = None
            self.site.events.append(f"{self.name} released")

    def close(self) -> None:
        self.release()


def loop_of(site: Site, name: str, runs: list[str]) -> Callable[[], Awaitable[None]]:
    """A control loop that records when it runs and stops, in the site's event list."""

    async def run() -> None:
        runs.append(name)
        site.events.append(f"{name} runs")
        try:
            await asyncio.Event().wait()
        finally:
            site.events.append(f"{name} stops")

    return run


async def wait_for(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(CHECK_S)


async def test_a_standby_takes_the_site_when_the_leader_lets_it_go() -> None:
    site, runs = Site(), list[str]()
    a, b = FakeLeadership(site, "a"), FakeLeadership(site, "b")
    leading = asyncio.create_task(lead(a, loop_of(site, "a", runs), check_s=CHECK_S))
    await wait_for(lambda: runs == ["a"])
    standby = asyncio.create_task(lead(b, loop_of(site, "b", runs), check_s=CHECK_S))
    await asyncio.sleep(10 * CHECK_S)
    assert runs == ["a"] and site.holder is a  # b stands by

    leading.cancel()
    await asyncio.gather(leading, return_exceptions=True)
    await wait_for(lambda: runs == ["a", "b"])
    assert site.events == ["a acquired", "a runs", "a stops", "a released", "b acquired", "b runs"]
    standby.cancel()
    await asyncio.gather(standby, return_exceptions=True)
    assert site.holder is None and site.events[-2:] == ["b stops", "b released"]


async def test_a_lost_lead_stops_the_loop_then_the_process_stands_by_and_leads_again() -> None:
    site, runs = Site(), list[str]()
    a = FakeLeadership(site, "a")
    leading = asyncio.create_task(lead(a, loop_of(site, "a", runs), check_s=CHECK_S))
    await wait_for(lambda: runs == ["a"])

    other = object()
    site.holder = other  # the store gave the site to someone else
    await wait_for(lambda: "a stops" in site.events)
    await asyncio.sleep(10 * CHECK_S)
    assert runs == ["a"] and site.holder is other  # stopped, and not running while it waits

    site.holder = None  # the other one is gone
    await wait_for(lambda: runs == ["a", "a"])
    assert site.events == ["a acquired", "a runs", "a stops", "a acquired", "a runs"]
    leading.cancel()
    await asyncio.gather(leading, return_exceptions=True)


async def test_a_check_that_does_not_answer_counts_as_a_lost_lead() -> None:
    site, runs = Site(), list[str]()
    a = FakeLeadership(site, "a")
    a.hang.set()
    leading = asyncio.create_task(lead(a, loop_of(site, "a", runs), check_s=CHECK_S))
    try:
        await wait_for(lambda: "a stops" in site.events)
        # The loop stopped while the check still hung: it did not wait for the store.
        assert site.events[:3] == ["a acquired", "a runs", "a stops"]
    finally:
        a.unhang.set()
        leading.cancel()
        await asyncio.gather(leading, return_exceptions=True)


async def test_a_loop_that_fails_lets_the_site_go_and_raises() -> None:
    site = Site()
    a = FakeLeadership(site, "a")

    async def broken() -> None:
        raise RuntimeError("the devices file does not fit")

    with pytest.raises(RuntimeError, match="does not fit"):
        await lead(a, broken, check_s=CHECK_S)
    assert site.holder is None and site.events == ["a acquired", "a released"]


async def test_a_loop_that_returns_ends_the_lead() -> None:
    site = Site()
    a = FakeLeadership(site, "a")

    async def done() -> None:
        return None

    await asyncio.wait_for(lead(a, done, check_s=CHECK_S), 5)
    assert site.holder is None
