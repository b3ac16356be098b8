"""The stop rule both buses share for a subscription's consumer task."""

from __future__ import annotations

import asyncio


async def stop_consumer(
    task: asyncio.Task[None] | None, *, busy: bool, grace_s: float | None
) -> None:
    """End a consumer task whose stop flag is already set: cancel it at once while it waits for
    events; while it runs a handler, give that `grace_s` seconds (None: as long as it takes)
    before cancelling. A task stopping itself (a handler unsubscribing) just ends its loop."""
    if task is None or task is asyncio.current_task():
        return
    if busy:
        done, _ = await asyncio.wait([task], timeout=grace_s)
        if done:
            return
    task.cancel()
    await asyncio.wait([task])
