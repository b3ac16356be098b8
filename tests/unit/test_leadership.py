"""`lead`: a site's control loop runs only while this process holds the site; a lost lead stops
it before the site is let go, and the process stands by until it can take the site again."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from hcp.services.leadership import lead

CHECK_S = 0.01


class Site:
    """Leadership of one site shared by fake processes: `holder` is who holds it."""

    def __init__(self) -> None:
        self.holder: object | None = None
        self.events: list[str] = []
        self.down = False  # the store cannot be reached
        self.started_at: list[float] = []  # loop time each control loop started


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
        if self.site.down:
            raise ConnectionError("the store is down")
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
        site.started_at.append(asyncio.get_running_loop().time())
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


async def test_a_standby_that_takes_over_waits_for_the_old_leader_to_notice() -> None:
    """The store may end a leader's session before the leader knows: it learns it at its next
    check, up to two check periods later. The one taking over waits that long first."""
    site, runs = Site(), list[str]()
    b = FakeLeadership(site, "b")
    other = object()
    site.holder = other  # another process leads
    standby = asyncio.create_task(lead(b, loop_of(site, "b", runs), check_s=0.05))
    await asyncio.sleep(0.1)
    freed_at = asyncio.get_running_loop().time()
    site.holder = None  # its session ended
    await wait_for(lambda: runs == ["b"])
    assert site.started_at[0] - freed_at >= 2 * 0.05
    standby.cancel()
    await asyncio.gather(standby, return_exceptions=True)


async def test_a_store_that_cannot_be_reached_is_waited_out_not_a_crash() -> None:
    site, runs = Site(), list[str]()
    a = FakeLeadership(site, "a")
    site.down = True
    leading = asyncio.create_task(lead(a, loop_of(site, "a", runs), check_s=CHECK_S))
    await asyncio.sleep(10 * CHECK_S)
    assert not leading.done() and runs == []
    site.down = False
    await wait_for(lambda: runs == ["a"])
    leading.cancel()
    await asyncio.gather(leading, return_exceptions=True)


async def test_a_second_stop_signal_does_not_cut_the_clean_up_short(tmp_path: Path) -> None:
    """`hcp controller` on Ctrl-C, Ctrl-C: the second signal came while the loop gave the
    miners' sessions back, cancelled that, and left them logged on (refusing the next leader)."""
    from hcp.adapters.db.leadership import FileLeadership
    from hcp.cli.serve import _until_stopped

    cleaned: list[str] = []

    async def control() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0.3)  # stop_live: commands in flight, log off every miner
            cleaned.append("logged off")

    leadership = FileLeadership(tmp_path / "site.lock", "site-1")
    loop = asyncio.get_running_loop()
    loop.call_later(0.2, os.kill, os.getpid(), signal.SIGINT)
    loop.call_later(0.3, os.kill, os.getpid(), signal.SIGINT)
    await asyncio.wait_for(_until_stopped(lead(leadership, control, check_s=5.0)), 10)
    assert cleaned == ["logged off"] and not leadership.held
