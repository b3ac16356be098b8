"""`hcp up --asics N --gpus N` on a database that already holds the site: it grows to the size
asked; a smaller or other fleet is refused when asked for on the command line (kept, with a
warning, when it only comes from the settings), and nothing is written then."""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hcp import bootstrap
from hcp.adapters.clock import ManualClock, ScaledClock, SystemClock
from hcp.domain.devices import DeviceKind
from hcp.domain.identity import Principal, Role
from hcp.domain.plans import SitePlan
from hcp.domain.workloads import Requirements, WorkloadClass
from hcp.services.workloads import Submission
from tests.api.conftest import START, make_settings

BOTH = (DeviceKind.ASIC, DeviceKind.GPU)
SPECS = "SELECT name, spec FROM device_models"


def prepared(
    tmp_path: Path, *, fleet_asked: tuple[DeviceKind, ...] = (), **sizes: object
) -> Counter[str]:
    """Prepare the database under `tmp_path` for a site of `sizes`; the stored devices by kind
    and the racks they sit in, counted."""
    settings = make_settings(f"sqlite:///{tmp_path / 'hcp.db'}", tmp_path / "var", **sizes)
    runtime = bootstrap.build(settings, ManualClock(START))
    try:
        bootstrap.prepare(runtime, fleet_asked=fleet_asked)
        with runtime.unit_of_work() as uow:
            devices = uow.fleet.devices(site_id=settings.site_id)
    finally:
        runtime.close()
    counted = Counter(d.kind.value for d in devices)
    counted["racks"] = len({d.rack_id for d in devices})
    counted["ids"] = len({d.id for d in devices})
    return counted


def test_a_stored_site_grows_to_the_size_asked(tmp_path: Path) -> None:
    first = prepared(tmp_path, site_asics=50, site_gpus=10)
    assert (first["asic"], first["gpu"], first["racks"]) == (50, 10, 2 + 2)
    grown = prepared(tmp_path, fleet_asked=BOTH, site_asics=130, site_gpus=20)
    # 130 miners fill 4 racks of 40 (the second, half full before, filled up); 20 GPUs 3 nodes.
    assert (grown["asic"], grown["gpu"], grown["racks"]) == (130, 20, 4 + 3)
    assert grown["ids"] == 150
    again = prepared(tmp_path, fleet_asked=BOTH, site_asics=130, site_gpus=20)
    assert again == grown


def test_a_smaller_fleet_asked_on_the_command_line_is_refused(tmp_path: Path) -> None:
    prepared(tmp_path, site_asics=50, site_gpus=10)
    with pytest.raises(bootstrap.FleetMismatch) as caught:
        prepared(tmp_path, fleet_asked=BOTH, site_asics=80, site_gpus=3)
    assert "holds site site-west-1 with 10 GPUs (H100 SXM) where 3 H100 SXM are asked" in str(
        caught.value
    )
    # Refused as a whole: the 30 miners the same command asked for more were not added.
    unchanged = prepared(tmp_path, site_asics=50, site_gpus=10)
    assert (unchanged["asic"], unchanged["gpu"]) == (50, 10)


def test_the_refusal_points_at_a_var_dir_of_its_own(tmp_path: Path) -> None:
    """It said "use another database (HCP_DATABASE_URL)": a database of its own in the same
    var dir makes its first-start keys over that var dir's demo-keys.json, whose keys (shown
    once) belong to the first database."""
    prepared(tmp_path, site_asics=50, site_gpus=10)
    with pytest.raises(bootstrap.FleetMismatch, match=r"its own var dir \(HCP_VAR_DIR"):
        prepared(tmp_path, fleet_asked=BOTH, site_asics=10, site_gpus=10)


def test_a_smaller_fleet_from_the_settings_keeps_the_stored_site(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    prepared(tmp_path, site_asics=50, site_gpus=10)
    with caplog.at_level(logging.WARNING, logger="hcp.bootstrap"):
        kept = prepared(tmp_path, site_asics=5, site_gpus=10)
    assert (kept["asic"], kept["gpu"]) == (50, 10)
    assert "keeps the stored 50 ASICs (S21), more than the 5 of the settings" in caplog.text


def test_another_model_is_not_mixed_into_a_stored_site(tmp_path: Path) -> None:
    prepared(tmp_path, site_asics=10, site_gpus=0)
    with pytest.raises(bootstrap.FleetMismatch, match=r"10 ASICs \(S21\) where 20 S19 XP"):
        prepared(tmp_path, fleet_asked=BOTH, site_asics=20, site_gpus=0, site_asic_model="S19 XP")


def test_a_kind_not_asked_for_keeps_its_larger_stored_count(tmp_path: Path) -> None:
    """`hcp up --gpus 20`, then `hcp up --asics 100`: the 20 GPUs stay (the settings' 10 was
    not asked for), and the miners grow."""
    prepared(tmp_path, fleet_asked=(DeviceKind.GPU,), site_asics=50, site_gpus=20)
    grown = prepared(tmp_path, fleet_asked=(DeviceKind.ASIC,), site_asics=100, site_gpus=10)
    assert (grown["asic"], grown["gpu"]) == (100, 20)


def test_gpus_are_not_laid_out_anew_on_a_stored_site(tmp_path: Path) -> None:
    """Four GPUs a node asked of a site stored with eight a node would move stored GPUs to
    other nodes (and give new ones indexes their node's simulator lacks): refused."""
    prepared(tmp_path, site_asics=0, site_gpus=10)
    with pytest.raises(bootstrap.FleetMismatch, match="GPUs sit up to 8 to a node where 4 per"):
        prepared(tmp_path, fleet_asked=BOTH, site_asics=0, site_gpus=20, site_gpus_per_node=4)
    grown = prepared(tmp_path, fleet_asked=BOTH, site_asics=0, site_gpus=20)
    assert (grown["gpu"], grown["racks"]) == (20, 3)


def test_the_site_settings_reach_a_stored_site(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    prepared(tmp_path, site_asics=5, site_gpus=0)
    with caplog.at_level(logging.INFO, logger="hcp.bootstrap"):
        prepared(tmp_path, site_asics=5, site_gpus=0, site_capacity_mw=2.5, site_pue=1.2)
    assert "now has capacity_mw 1.0 -> 2.5, pue 1.08 -> 1.2" in caplog.text
    settings = make_settings(f"sqlite:///{tmp_path / 'hcp.db'}", tmp_path / "var")
    runtime = bootstrap.build(settings, ManualClock(START))
    try:
        with runtime.unit_of_work() as uow:
            site = uow.fleet.site(settings.site_id)
    finally:
        runtime.close()
    assert site is not None and (site.capacity_mw, site.pue) == (2.5, 1.2)


def _store_plan(runtime: bootstrap.Runtime, site_id: str, created_at: datetime) -> None:
    plan = SitePlan("plan-ahead", site_id, created_at, "heuristic", "optimal", None, 0.0,
                    created_at, ())  # fmt: skip
    with runtime.unit_of_work() as uow:
        uow.plans.add(plan)
        uow.commit()


def test_platform_time_resumes_at_the_stored_history_after_a_sped_up_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`hcp up --speed 60` left plans days ahead of the wall; the next start carries on from
    them instead of metering and planning behind its own history."""
    settings = make_settings(f"sqlite:///{tmp_path / 'hcp.db'}", tmp_path / "var")
    first = bootstrap.build(settings, ScaledClock(60.0))
    try:
        bootstrap.prepare(first)
        ahead = first.clock.now() + timedelta(days=3)
        _store_plan(first, settings.site_id, ahead)
    finally:
        first.close()
    clock = ScaledClock(1.0)
    second = bootstrap.build(settings, clock)
    try:
        with caplog.at_level(logging.WARNING, logger="hcp.bootstrap"):
            bootstrap.prepare(second)
    finally:
        second.close()
    assert ahead <= clock.now() < ahead + timedelta(seconds=30)
    assert f"platform time resumes at {ahead.isoformat()}" in caplog.text


def test_platform_time_stays_with_the_wall_when_the_history_is_behind(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'hcp.db'}", tmp_path / "var")
    runtime = bootstrap.build(settings, ScaledClock(1.0))
    try:
        bootstrap.prepare(runtime)
        _store_plan(runtime, settings.site_id, datetime.now(UTC) - timedelta(hours=1))
        bootstrap.prepare(runtime)
        assert abs(runtime.clock.now() - datetime.now(UTC)) < timedelta(seconds=5)
    finally:
        runtime.close()


class _SlowPlanner:
    """The site's planner, its solve taking 30 s of platform time: usage is then metered up to
    a time after the newest plan was made."""

    def __init__(self, planner: Any, clock: ManualClock) -> None:
        self.planner, self.name, self.clock = planner, planner.name, clock

    def plan(self, *args: Any) -> Any:
        made = self.planner.plan(*args)
        self.clock.advance(timedelta(seconds=30))
        return made


async def test_platform_time_resumes_after_the_newest_metered_usage(tmp_path: Path) -> None:
    """Resuming at the newest plan alone would meter again the 30 s after it, already billed."""
    settings = make_settings(f"sqlite:///{tmp_path / 'hcp.db'}", tmp_path / "var",
                             site_asics=2, site_gpus=2)  # fmt: skip
    ahead = datetime.now(UTC) + timedelta(days=2)
    clock = ManualClock(ahead)
    first = bootstrap.build(settings, clock)
    try:
        bootstrap.prepare(first)
        live = await bootstrap.start_live(first)
        live.control._planner = _SlowPlanner(live.control._planner, clock)  # type: ignore[assignment]
        customer = Principal("k", Role.CUSTOMER, "cust-001")
        batch = Submission(WorkloadClass.AI_INFERENCE_BATCH, Requirements("H100", 1, None, 10.0))
        await first.platform.workloads.submit(customer, batch)
        await live.control.poll()
        for _ in range(3):
            assert (await live.control.tick()).errors == []
            clock.advance(timedelta(minutes=5))
        await bootstrap.stop_live(live)
        with first.unit_of_work() as uow:
            metered = uow.billing.metered_until()
            plan = uow.plans.latest(settings.site_id)
    finally:
        first.close()
    assert metered is not None and plan is not None and metered > plan.created_at
    scaled = ScaledClock(1.0)
    second = bootstrap.build(settings, scaled)
    try:
        bootstrap.prepare(second)
    finally:
        second.close()
    assert metered <= scaled.now() < metered + timedelta(seconds=30)


def test_the_wall_clock_keeps_to_the_wall_with_history_ahead(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Devices elsewhere keep wall time: `hcp up` with a devices file keeps the wall clock and
    says the store is ahead of it."""
    settings = make_settings(f"sqlite:///{tmp_path / 'hcp.db'}", tmp_path / "var")
    runtime = bootstrap.build(settings, SystemClock())
    try:
        bootstrap.prepare(runtime)
        ahead = datetime.now(UTC) + timedelta(days=3)
        _store_plan(runtime, settings.site_id, ahead)
        with caplog.at_level(logging.WARNING, logger="hcp.bootstrap"):
            bootstrap.prepare(runtime)
        assert abs(runtime.clock.now() - datetime.now(UTC)) < timedelta(seconds=5)
    finally:
        runtime.close()
    assert f"the store holds records up to {ahead.isoformat()}" in caplog.text


def test_the_leaders_platform_time_is_stored_for_api_processes(tmp_path: Path) -> None:
    """The process that prepares the site stores its clock's anchor: a `FollowedClock` (what
    `hcp api` runs on) then keeps the same platform time, here three days ahead of the wall;
    the people's clock (sessions, keys, rate limits) stays with the wall."""
    from hcp.adapters.clock import FollowedClock
    from hcp.adapters.db.platform_clock import SqlClockAnchors

    settings = make_settings(f"sqlite:///{tmp_path / 'hcp.db'}", tmp_path / "var")
    leader_clock = ScaledClock(60.0, datetime.now(UTC) + timedelta(days=3))
    leader = bootstrap.build(settings, leader_clock)
    try:
        assert abs(leader.platform.auth.now() - datetime.now(UTC)) < timedelta(seconds=5)
        bootstrap.prepare(leader)
        followed = FollowedClock(SqlClockAnchors(leader.engine, settings.site_id).load)
        followed.refresh()
        assert abs(followed.now() - leader_clock.now()) < timedelta(seconds=30)
        assert SqlClockAnchors(leader.engine, "another-site").load() is None
    finally:
        leader.close()


def test_a_refused_start_stores_no_clock_anchor(tmp_path: Path) -> None:
    """`hcp up --speed 60 --asics 5` on a larger stored site is refused: its clock must not
    become the one API processes follow."""
    from hcp.adapters.db.platform_clock import SqlClockAnchors

    prepared(tmp_path, site_asics=10)
    settings = make_settings(f"sqlite:///{tmp_path / 'hcp.db'}", tmp_path / "var", site_asics=5)
    runtime = bootstrap.build(settings, ScaledClock(60.0))
    try:
        before = SqlClockAnchors(runtime.engine, settings.site_id).load()
        with pytest.raises(bootstrap.FleetMismatch):
            bootstrap.prepare(runtime, fleet_asked=(DeviceKind.ASIC,))
        assert SqlClockAnchors(runtime.engine, settings.site_id).load() == before
    finally:
        runtime.close()


def test_a_devices_file_that_does_not_fit_the_site_is_refused_before_anything_is_stored(
    tmp_path: Path,
) -> None:
    """`HCP_DEVICES_FILE` listing 1 miner for a site of 50: hcp up stopped with 'asics.addresses
    lists 1 miners; the site has 50' only after it had stored the site and made the demo keys
    and logins, which it never printed (a first start that did not happen)."""
    from hcp.adapters.devices.site_file import load_device_file
    from hcp.domain.errors import DataError

    devices = tmp_path / "devices.toml"
    devices.write_text('[asics]\naddresses = ["10.0.0.1:4028"]\n')
    var = tmp_path / "var"
    settings = make_settings(f"sqlite:///{tmp_path / 'hcp.db'}", var, site_asics=50)
    runtime = bootstrap.build(settings, ManualClock(START))
    try:
        with pytest.raises(DataError, match=r"asics\.addresses lists 1 miners; the site has 50"):
            bootstrap.prepare(runtime, device_file=load_device_file(devices))
        with runtime.unit_of_work() as uow:
            assert uow.fleet.site(settings.site_id) is None
            assert uow.fleet.devices(site_id=settings.site_id) == []
            assert uow.api_keys.all() == []
        assert not (var / "demo-keys.json").exists()
    finally:
        runtime.close()


def test_a_devices_file_is_measured_against_the_miners_a_stored_site_keeps(tmp_path: Path) -> None:
    from hcp.adapters.devices.site_file import load_device_file
    from hcp.domain.errors import DataError

    prepared(tmp_path, site_asics=50, site_gpus=10)
    settings = make_settings(f"sqlite:///{tmp_path / 'hcp.db'}", tmp_path / "var", site_asics=20)
    listed = tmp_path / "listed.toml"
    listed.write_text(f"[asics]\naddresses = {[f'10.0.0.{i}:4028' for i in range(20)]}\n")
    ports = tmp_path / "ports.toml"
    ports.write_text('[asics]\nhost = "127.0.0.1"\nfirst_port = 14028\n')
    runtime = bootstrap.build(settings, ManualClock(START))
    try:
        with pytest.raises(DataError, match=r"lists 20 miners; the site has 50"):
            bootstrap.prepare(runtime, device_file=load_device_file(listed))
        assert bootstrap.prepare(runtime, device_file=load_device_file(ports)) is None
    finally:
        runtime.close()


def test_the_stored_model_specs_hold_the_catalog_figures_only(tmp_path: Path) -> None:
    """What a model derives from its figures (its profiles indexed by name) is not stored: a
    spec rebuilds its model."""
    from hcp.domain.catalog import asic_model, gpu_model
    from hcp.domain.devices import AsicModel, AsicProfile, GpuModel

    settings = make_settings(f"sqlite:///{tmp_path / 'hcp.db'}", tmp_path / "var")
    runtime = bootstrap.build(settings, ManualClock(START))
    try:
        bootstrap.prepare(runtime)
    finally:
        runtime.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "hcp.db")) as db:
        specs = {name: json.loads(spec) for name, spec in db.execute(SPECS)}
    s21 = specs["S21"]
    assert set(s21) == {
        "name",
        "manufacturer",
        "profiles",
        "stock_profile",
        "sleep_power_w",
        "wake_seconds",
    }
    profiles = tuple(AsicProfile(**p) for p in s21["profiles"])
    assert AsicModel(**{**s21, "profiles": profiles}) == asic_model("S21")
    gpu = next(spec for name, spec in specs.items() if name != "S21")
    assert GpuModel(**gpu) == gpu_model(gpu["name"])
