"""The collector's settings for long-running processes (`hcp.gc_tuning`), checked in a fresh
interpreter so that this test process keeps CPython's own."""

from __future__ import annotations

import json
import subprocess
import sys

from hcp.gc_tuning import OLDER_THRESHOLDS, YOUNG_THRESHOLD

PROBE = """
import gc, json
from hcp.gc_tuning import settle_heap
kept = [[i] for i in range(1000)]
before = gc.get_freeze_count()
settle_heap()
print(json.dumps({"before": before, "frozen": gc.get_freeze_count(),
                  "thresholds": gc.get_threshold(), "tracked_young": gc.get_count()[0]}))
"""


def test_settle_heap_freezes_what_lives_and_raises_the_thresholds() -> None:
    found = json.loads(subprocess.check_output([sys.executable, "-c", PROBE], text=True))
    assert found["before"] == 0
    assert found["frozen"] >= 1000  # the kept lists at least left the collector's passes
    assert found["thresholds"] == [YOUNG_THRESHOLD, *OLDER_THRESHOLDS]
    assert YOUNG_THRESHOLD > 700  # CPython's default, which it replaces


def test_a_cycle_is_still_collected_after_settling() -> None:
    probe = """
import gc, weakref
from hcp.gc_tuning import settle_heap, YOUNG_THRESHOLD
settle_heap()
class Node: pass
a, b = Node(), Node()
a.other, b.other = b, a
alive = weakref.ref(a)
del a, b
for _ in range(YOUNG_THRESHOLD + 1):  # enough allocations to pass the young threshold
    [None]
junk = [[i] for i in range(YOUNG_THRESHOLD + 1)]
print(alive() is None)
"""
    assert subprocess.check_output([sys.executable, "-c", probe], text=True).strip() == "True"
