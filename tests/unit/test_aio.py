"""bounded_map: every item once, results in input order, never more than N calls at once."""

from __future__ import annotations

import asyncio
import random

from hcp.aio import bounded_map, run_on_uvloop


async def test_results_keep_the_input_order_with_at_most_n_in_flight() -> None:
    in_flight = most = 0
    seen: list[int] = []

    async def square(n: int) -> int:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(random.random() / 1000)  # finish out of order
        seen.append(n)
        in_flight -= 1
        return n * n

    assert await bounded_map(square, range(200), 7) == [n * n for n in range(200)]
    assert most == 7 and sorted(seen) == list(range(200))


async def test_no_items_and_a_concurrency_below_one() -> None:
    async def echo(n: int) -> int:
        return n

    assert await bounded_map(echo, [], 4) == []
    assert await bounded_map(echo, [1, 2], 0) == [1, 2]  # still makes progress, one at a time


async def test_the_first_failure_ends_the_map_and_is_raised() -> None:
    started: list[int] = []

    async def fail_on_three(n: int) -> int:
        started.append(n)
        await asyncio.sleep(0.001 if n != 3 else 0)
        if n == 3:
            raise ValueError("three")
        return n

    try:
        await bounded_map(fail_on_three, range(100), 4)
    except ValueError as error:
        assert str(error) == "three"
    else:
        raise AssertionError("the failure was not raised")
    count = len(started)
    await asyncio.sleep(0.05)
    assert len(started) == count < 10  # nothing went on behind the caller


def test_run_on_uvloop_returns_the_result_and_runs_on_uvloop() -> None:
    async def main() -> str:
        return type(asyncio.get_running_loop()).__module__.split(".")[0]

    assert run_on_uvloop(main()) == "uvloop"
