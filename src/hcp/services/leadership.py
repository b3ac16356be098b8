"""Leading a site: its control loop runs only in the process that holds the site (`Leadership`);
any other process stands by and takes over when the leader dies or loses the store."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from hcp.services.ports import Leadership

log = logging.getLogger(__name__)


async def lead(
    leadership: Leadership,
    run: Callable[[], Awaitable[None]],
    *,
    check_s: float = 5.0,
) -> None:
    """Run `run` whenever this process leads `leadership`'s site, until cancelled.

    While another process leads, stand by and try again every `check_s`. While leading, check
    every `check_s` that the site is still held; when it is lost, or the check takes longer
    than `check_s`, `run` is cancelled before anything else happens (a leader without the lock
    must stop commanding before another one starts), and this process stands by again. When
    `run` returns or raises, the site is let go and `lead` ends the same way.
    """
    standing_by = False
    while True:
        if not await asyncio.to_thread(leadership.try_acquire):
            if not standing_by:
                log.warning(
                    "site %s is controlled by another process; standing by", leadership.site_id
                )
                standing_by = True
            await asyncio.sleep(check_s)
            continue
        standing_by = False
        log.warning(
            "site %s: this process leads it now (runs its control loop)", leadership.site_id
        )
        if not await _while_held(leadership, run, check_s):
            return
        log.error(
            "site %s: the lead was lost (the store ended the lock's session); the control loop "
            "stopped, standing by",
            leadership.site_id,
        )


async def _while_held(
    leadership: Leadership, run: Callable[[], Awaitable[None]], check_s: float
) -> bool:
    """Run `run` while the site stays held; True when it was lost, False when `run` ended."""
    task = asyncio.ensure_future(run())
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=check_s)
            if done:
                task.result()  # what `run` raised, raised here
                return False
            try:
                held = await asyncio.wait_for(asyncio.to_thread(leadership.still_held), check_s)
            except TimeoutError:
                log.error("site %s: no answer on the lock within %g s", leadership.site_id, check_s)
                held = False
            if not held:
                return True
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.to_thread(leadership.release)
