"""Group commit: many concurrent submissions share one transaction.

Each caller's row is acknowledged only after the transaction holding it has committed, so
nothing acknowledged can be lost to a crash; a batch amortises the commit and the ORM's
per-transaction cost over every request that arrived while the previous batch was written.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from dataclasses import dataclass

from hcp.domain.workloads import StateChange, Workload
from hcp.services.ports import UnitOfWorkFactory

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Pending:
    workload: Workload
    change: StateChange
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[int]


class GroupCommitWriter:
    """A `WorkloadWriter` with one writer thread; at most `max_batch` rows per transaction."""

    def __init__(self, uow: UnitOfWorkFactory, max_batch: int = 512) -> None:
        self._uow = uow
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    async def write(self, workload: Workload, change: StateChange) -> int:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._start()
        self._queue.put(_Pending(workload, change, loop, future))
        return await future

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._commit(batch)

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            with self._uow() as uow:
                positions = uow.workloads.add_many([(p.workload, p.change) for p in batch])
                uow.commit()
        except Exception as exc:
            if len(batch) > 1:  # isolate the bad row: the others still deserve their commit
                for pending in batch:
                    self._commit([pending])
                return
            log.exception("storing workload %s failed", batch[0].workload.id)
            _settle([(batch[0], exc)])
            return
        _settle(list(zip(batch, positions, strict=True)))


def _settle(outcomes: list[tuple[_Pending, int | BaseException]]) -> None:
    """Resolve each caller's future on its own loop: one wake-up per loop, not per caller."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Pending, int | BaseException]]] = {}
    for pending, outcome in outcomes:
        by_loop.setdefault(pending.loop, []).append((pending, outcome))
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, items)
        except RuntimeError:  # that event loop has closed: nobody is waiting any more
            log.debug("%d workloads stored after their callers' loop closed", len(items))


def _resolve(items: list[tuple[_Pending, int | BaseException]]) -> None:
    for pending, outcome in items:
        if pending.future.done():  # the caller went away; the row is stored all the same
            continue
        if isinstance(outcome, BaseException):
            pending.future.set_exception(outcome)
        else:
            pending.future.set_result(outcome)
