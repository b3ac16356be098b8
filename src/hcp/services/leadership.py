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

    A site taken over from another process is held `2 × check_s` before `run` starts: when the
    store ended the old leader's session (not the old leader itself), that leader learns it at
    its next check, up to `check_s` later plus `check_s` for a check that hangs; starting at
    once ran both loops for those seconds. A store that cannot be reached is a reason to stand
    by, not to stop: the lock is tried again every `check_s`.
    """
    standing_by = False
    unreachable = False
    while True:
        try:
            taken = await asyncio.to_thread(leadership.try_acquire)
        except Exception as error:
            if not unreachable:
                log.error("site %s: cannot reach the store to lead (%s)", leadership.site_id, error)
                unreachable = True
            taken = False
        else:
            unreachable = False
        if taken and standing_by:
            taken = await _settle(leadership, 2 * check_s, check_s)
        if not taken:
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
        standing_by = True
        log.error(
            "site %s: the lead was lost (the store ended the lock's session); the control loop "
            "stopped, standing by",
            leadership.site_id,
        )


async def _settle(leadership: Leadership, hold_s: float, check_s: float) -> bool:
    """Hold a site just taken over for `hold_s` before running its loop (see `lead`); False,
    with the site let go, if it is lost meanwhile."""
    log.warning(
        "site %s: taken over; waiting %g s for the last leader's loop to stop",
        leadership.site_id,
        hold_s,
    )
    loop = asyncio.get_running_loop()
    until = loop.time() + hold_s
    while (left := until - loop.time()) > 0:
        await asyncio.sleep(min(check_s, left))
        if not await _still_held(leadership, check_s):
            await asyncio.to_thread(leadership.release)
            return False
    return True


async def _still_held(leadership: Leadership, check_s: float) -> bool:
    """Whether the site is still held; a check that gets no answer within `check_s` (or fails)
    counts as lost."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(leadership.still_held), check_s)
    except TimeoutError:
        log.error("site %s: no answer on the lock within %g s", leadership.site_id, check_s)
    except Exception:
        log.exception("site %s: checking the lock failed", leadership.site_id)
    return False


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
            if not await _still_held(leadership, check_s):
                return True
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.to_thread(leadership.release)
