"""Small asyncio helpers shared by the services and the adapters."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, TypeVar, cast

T = TypeVar("T")
R = TypeVar("R")


async def bounded_map(
    function: Callable[[T], Awaitable[R]], items: Iterable[T], concurrency: int
) -> list[R]:
    """`function` over `items` with at most `concurrency` calls in flight; results in input
    order. A fixed set of workers takes the items in turn, rather than a task per item queued
    on a semaphore: at 100,000 items that is 100,000 fewer waiting tasks and futures, and no
    semaphore wake-up work per item."""
    work = list(enumerate(items))
    results: list[R | None] = [None] * len(work)
    queue = iter(work)

    async def worker() -> None:
        for index, item in queue:  # one shared iterator: every item is taken once
            results[index] = await function(item)

    workers = [asyncio.ensure_future(worker()) for _ in range(min(max(1, concurrency), len(work)))]
    try:
        await asyncio.gather(*workers)
    except BaseException:
        # The first failure ends the map: no worker goes on taking items behind the caller.
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        raise
    return cast(list[R], results)  # every slot was filled


def run_on_uvloop(main: Coroutine[Any, Any, R]) -> R:
    """Run `main` to its result on uvloop where it is installed (it is, with uvicorn[standard]
    on Linux), else on asyncio's own loop: how `hcp up` and the benchmarks run."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
