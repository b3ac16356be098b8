"""The garbage collector's settings for HCP's long-running processes: the control plane
(`hcp up`, `hcp controller`), the device I/O workers and the simulators.

CPython collects its youngest generation every 700 net allocations of container objects, and
the whole heap once enough survivors pile up. A dispatcher curtailing 100,000 miners makes
millions of short-lived objects (requests, replies, readings, commands). Measured on
2026-12-08 with 100,000 miners: with the miners' replies made in the same process, the
collector took 2.2 s of 19 s of CPU with CPython's thresholds and 0.3 s with these; in
`scripts/bench_curtail.py`'s 100,000 run, the dispatcher's CPU went from 17.8 to 16.5 s.
Reference counting frees almost all of those objects anyway: the collector is there for
cycles, and the few that form here can wait a little longer.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000
"""Net allocations between two collections of the youngest generation (CPython: 700)."""
OLDER_THRESHOLDS = (20, 10)
"""Collections of one generation between two of the next (CPython: 10, 10)."""


def settle_heap() -> None:
    """Call once a long-running process has built what it keeps: one full collection, every
    object alive now moved out of the collector's passes (`gc.freeze`), and the thresholds
    above from then on."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
