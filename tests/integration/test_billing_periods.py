"""Usage metered across the end of a month is billed to each month for its own time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from hcp.billing import EnergySource
from hcp.domain.telemetry import Sample
from hcp.domain.workloads import WorkloadClass, WorkloadEvent, WorkloadState
from tests.integration.schedworld import ADMIN, SITE, world


async def test_a_tick_across_midnight_of_the_first_bills_each_month_its_own_minutes(
    tmp_path: Path,
) -> None:
    """Ticks are five minutes apart on the wall, not on the hour: one from 23:57:30 on 30
    June to 00:02:30 on 1 July billed all five minutes to June before."""
    async with world(tmp_path) as w:
        job = await w.submit(WorkloadClass.AI_INFERENCE_BATCH, gpus=1, hours=24 * 40)
        await w.scheduler.tick({SITE: 10})
        started = w.get(job).started_at
        assert started is not None
        before = datetime(2025, 6, 30, 23, 57, 30, tzinfo=UTC)
        after = before + timedelta(minutes=5)
        w.clock.advance(after - w.clock.now())
        billing = w.runtime.platform.billing
        billing.meter(started, before, 30.0)
        billing.meter(before, after, 30.0)
        billing.meter(before, after, 30.0)  # again: nothing more
        july = billing.issue("cust-001", "2025-07")
        assert sum((line.quantity for line in july.lines), Decimal(0)) == Decimal("0.041667")
        june = [r for r in billing.usage(ADMIN, "2025-06") if r.workload_id == job]
        assert max(r.interval_end for r in june) == datetime(2025, 7, 1, tzinfo=UTC)


async def test_a_price_change_prices_only_the_usage_after_it(tmp_path: Path) -> None:
    """June, invoiced at the list price, is rebuilt the same after a price rise in July; the
    usage after the rise is priced at it."""
    async with world(tmp_path) as w:
        job = await w.submit(WorkloadClass.AI_INFERENCE_BATCH, gpus=2, hours=24 * 40)
        await w.scheduler.tick({SITE: 10})
        start = w.clock.now()
        w.clock.advance(timedelta(hours=1))
        billing = w.runtime.platform.billing
        billing.meter(start, w.clock.now(), 30.0)
        june = billing.issue("cust-001", "2025-06")
        assert june.total == Decimal("5.50")  # 2 GPU-hours at 2.75
        w.clock.advance(datetime(2025, 7, 2, tzinfo=UTC) - w.clock.now())
        risen = Decimal("5.0000")
        billing.set_price(ADMIN, WorkloadClass.AI_INFERENCE_BATCH, "H100", risen)
        assert billing.issue("cust-001", "2025-06") == june
        before = w.clock.now()
        w.clock.advance(timedelta(hours=1))
        billing.meter(before, w.clock.now(), 30.0)
        july = [r for r in billing.usage(ADMIN, "2025-07") if r.workload_id == job]
        after = sum((r.gpu_hours for r in july if r.interval_start >= before), Decimal(0))
        assert after == 2
        assert billing.issue("cust-001", "2025-07").total == Decimal("10.00")  # at the new price
        assert billing.sheet.usd_per_gpu_hour[WorkloadClass.AI_INFERENCE_BATCH]["H100"] == risen


async def test_a_short_run_on_a_node_whose_clock_is_behind_is_still_billed(
    tmp_path: Path,
) -> None:
    """The node says the 3-minute job ended at an instant before our start of it (its clock
    is 10 minutes behind): the run ended at its start, and billing dropped all of it."""
    async with world(tmp_path) as w:
        job = await w.submit(WorkloadClass.AI_INFERENCE_BATCH, gpus=1, hours=0.05)
        w.runner.node_clock_behind = timedelta(minutes=10)
        await w.scheduler.tick({SITE: 10})
        started = w.clock.now()
        w.clock.advance(timedelta(minutes=5))
        await w.scheduler.tick({SITE: 10})
        stored = w.get(job)
        assert stored.state.value == "completed"
        w.runtime.platform.billing.meter(started, w.clock.now(), 30.0)
        usage = w.runtime.platform.billing.usage(ADMIN, "2025-06")
        assert [r.workload_id for r in usage] == [job]


async def test_a_price_change_inside_a_metered_interval_prices_the_time_after_it(
    tmp_path: Path,
) -> None:
    """An admin raises the price 2 minutes into a 5-minute tick: the 3 minutes after the rise
    were billed at the old price, the interval being priced as of its start."""
    async with world(tmp_path) as w:
        await w.submit(WorkloadClass.AI_INFERENCE_BATCH, gpus=6, hours=24)
        await w.scheduler.tick({SITE: 10})
        start = w.clock.now()
        billing = w.runtime.platform.billing
        w.clock.advance(timedelta(minutes=2))
        billing.set_price(ADMIN, WorkloadClass.AI_INFERENCE_BATCH, "H100", Decimal("5.0000"))
        w.clock.advance(timedelta(minutes=3))
        billing.meter(start, w.clock.now(), 30.0)
        invoice = billing.issue("cust-001", "2025-06")
        # 6 GPUs: 0.2 GPU-hours at 2.75 before the rise, 0.3 at 5.00 after it
        assert invoice.total == Decimal("0.55") + Decimal("1.50")
        assert sum((line.quantity for line in invoice.lines), Decimal(0)) == Decimal("0.5")


async def test_a_gpu_reading_of_negative_power_does_not_stop_billing(tmp_path: Path) -> None:
    """One GPU reported -1 W (a DCGM glitch) while two jobs ran: metering the interval raised
    on it, for every workload, and every later tick's metering, whose window still held the
    reading, raised again: nothing was billed any more."""
    async with world(tmp_path) as w:
        glitched = await w.submit(WorkloadClass.AI_INFERENCE_BATCH, gpus=1, hours=24)
        other = await w.submit(WorkloadClass.AI_TRAINING, gpus=1, hours=24)
        await w.scheduler.tick({SITE: 10})
        start = w.clock.now()
        [gpu] = w.get(glitched).gpu_ids
        readings = [(1, 700.0), (2, -1.0), (3, 650.0)]
        w.runtime.platform.telemetry.record(
            Sample(gpu, "power_w", start + timedelta(minutes=m), watts) for m, watts in readings
        )
        w.clock.advance(timedelta(minutes=6))
        assert w.runtime.platform.billing.meter(start, w.clock.now(), 30.0) == 2
        usage = {r.workload_id: r for r in w.runtime.platform.billing.usage(ADMIN, "2025-06")}
        assert set(usage) == {glitched, other}
        # 700 W from the start to minute 3 (the bad reading is skipped), then 650 W
        assert usage[glitched].energy_kwh == Decimal("0.067500")


async def test_a_finished_run_is_billed_on_the_gpus_its_start_recorded(tmp_path: Path) -> None:
    """A run's end releases its GPUs: metered after it, the run was billed on stand-ins for
    them, at catalog power, not by the telemetry of the GPU it ran on."""
    async with world(tmp_path) as w:
        job = await w.submit(WorkloadClass.AI_INFERENCE_BATCH, gpus=1, hours=0.05)
        await w.scheduler.tick({SITE: 10})
        started = w.clock.now()
        [gpu] = w.get(job).gpu_ids
        with w.runtime.unit_of_work() as uow:
            history = uow.workloads.history(job)
        assert [c.gpu_ids for c in history if c.event is WorkloadEvent.START] == [(gpu,)]
        at = started + timedelta(seconds=30)
        w.runtime.platform.telemetry.record([Sample(gpu, "power_w", at, 500.0)])
        w.clock.advance(timedelta(minutes=5))
        await w.scheduler.tick({SITE: 10})
        assert (w.state(job), w.get(job).gpu_ids) == (WorkloadState.COMPLETED, ())
        w.runtime.platform.billing.meter(started, w.clock.now(), 30.0)
        [usage] = w.runtime.platform.billing.usage(ADMIN, "2025-06")
        # 3 minutes at 500 W: 90,000 J = 0.025 kWh (700 W from the catalog: 0.035)
        assert (usage.energy_source, usage.energy_kwh) == (EnergySource.TELEMETRY, Decimal("0.025"))
