"""One control-loop tick with 10,000 simulated miners and 1,000 GPUs (125 nodes × 8), all in
this process on loopback, against the same tick with no devices at all (the baseline: what
market, planning, scheduling and bookkeeping cost on their own). Prints one JSON object.

As in `hcp up` (uvloop; the fleet polled between ticks, on its own rhythm), a fleet poll runs
one poll interval before each tick, not timed: it is the telemetry that confirms the last
tick's commands, and it follows the running GPU work (node statuses), so the tick need not
(`poll_between_ticks_seconds` is its median). `tick_seconds` is the median tick;
`first_tick_seconds` the first, in which the plan moves most miners to a new profile at
once (10,000 commands over TCP, each miner's first needing a LuxOS logon). A tick plans and
logs its commands and sends them in the background (the next tick waits for them);
`first_tick_delivery_seconds` is how long after the first tick its 10,000 commands took to
be all sent.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hcp import bootstrap
from hcp.adapters.clock import ManualClock
from hcp.aio import run_on_uvloop
from hcp.config import Settings
from hcp.domain.identity import Principal, Role
from hcp.domain.workloads import Requirements, WorkloadClass
from hcp.services.workloads import Submission

START = datetime(2025, 6, 1, 12, tzinfo=UTC)


def settings(folder: Path, asics: int, gpus: int) -> Settings:
    return Settings(
        env="test",
        secret_key="bench-secret-value",
        database_url=f"sqlite:///{folder / 'hcp.db'}",
        var_dir=folder / "var",
        site_asics=asics,
        site_gpus=gpus,
        site_capacity_mw=60.0,
        rate_limit_per_second=0,
    )


async def measure(folder: Path, asics: int, gpus: int, ticks: int) -> dict[str, Any]:
    clock = ManualClock(START)
    runtime = bootstrap.build(settings(folder, asics, gpus), clock)
    bootstrap.prepare(runtime)
    started = time.perf_counter()
    live = await bootstrap.start_live(runtime)
    start_s = time.perf_counter() - started
    gc.collect()
    gc.freeze()  # as `hcp up` does once the site is started
    customer = Principal("bench", Role.CUSTOMER, "cust-001")
    for i in range(min(gpus, 200)):
        kind = (WorkloadClass.AI_TRAINING, WorkloadClass.AI_INFERENCE_BATCH)[i % 2]
        await runtime.platform.workloads.submit(
            customer, Submission(kind, Requirements("H100", 4, None, 2.0))
        )
    try:
        poll_s = await timed(live.control.poll())
        await live.settle()
        tick_s, steps, polls_s = [], [], []
        commands: list[int] = []
        delivery_s: list[float] = []  # after the tick, until its commands are all sent
        tick_every, poll_every = runtime.settings.tick_seconds, runtime.settings.poll_seconds
        between = timedelta(seconds=max(0.0, tick_every - poll_every))
        for _ in range(ticks):
            clock.advance(timedelta(seconds=poll_every))
            t0 = time.perf_counter()
            outcome = await live.control.tick()
            tick_s.append(time.perf_counter() - t0)
            steps.append(outcome.seconds)
            assert not outcome.errors, outcome.errors
            delivery_s.append(await timed(live.dispatcher.delivered()))
            report = live.dispatcher.site.dispatcher.last_report
            commands.append(len(report.sent) if report is not None else 0)
            # As in `hcp up`, the last poll before the next tick ran one poll interval before
            # it (it also followed the running GPU work); untimed, its events stored.
            clock.advance(between)
            polls_s.append(await timed(live.control.poll()))
            await live.settle()
    finally:
        await bootstrap.stop_live(live)
        runtime.close()
    return {
        "tick_seconds": round(statistics.median(tick_s), 3),
        "tick_max_seconds": round(max(tick_s), 3),
        "ticks": [round(t, 3) for t in tick_s],
        "commands_per_tick": commands,
        "first_tick_seconds": round(tick_s[0], 3),
        "first_tick_delivery_seconds": round(delivery_s[0], 3),
        "first_tick_steps_seconds": steps[0],
        "tick_steps_seconds": {
            k: round(statistics.median(s[k] for s in steps[1:] or steps), 3) for k in steps[0]
        },
        "poll_seconds": round(poll_s, 3),
        "poll_between_ticks_seconds": round(statistics.median(polls_s), 3),
        "start_seconds": round(start_s, 3),
    }


async def timed(work: Any) -> float:
    t0 = time.perf_counter()
    await work
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--asics", type=int, default=10_000)
    parser.add_argument("--gpus", type=int, default=1_000)
    parser.add_argument("--ticks", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hcp-tick-") as tmp:
        full = run_on_uvloop(measure(Path(tmp) / "full", args.asics, args.gpus, args.ticks))
        empty = run_on_uvloop(measure(Path(tmp) / "empty", 0, 8, args.ticks))
    result = {
        **full,
        "miners": args.asics,
        "gpus": args.gpus,
        "baseline_tick_seconds": empty["tick_seconds"],
        "ratio": round(full["tick_seconds"] / max(empty["tick_seconds"], 1e-6), 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
