"""The rolling horizon's matrix cache: two inputs of the same structure (`structure_of`) have the
same constraint matrix, whatever their data, and a program compiled with a cached matrix is the
program a fresh build gives, array for array. And the solver's one-thread HiGHS."""

from __future__ import annotations

import threading
from dataclasses import fields, replace

import highspy
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hcp.domain.catalog import asic_model, gpu_model
from hcp.domain.workloads import WorkloadClass
from hcp.optimizer.inputs import (
    AsicFleet,
    AsicState,
    GpuFleet,
    JobInputs,
    PpaContract,
    RtContract,
    SiteInputs,
    SiteSpec,
    SiteState,
)
from hcp.optimizer.lp import CompiledLp
from hcp.optimizer.model import build_model, structure_of
from hcp.optimizer.plan import SolveStatus
from hcp.optimizer.planner import MatrixCache
from hcp.optimizer.solver import HighsSolver, LpResult

CLASSES = (WorkloadClass.AI_INFERENCE_BATCH, WorkloadClass.AI_TRAINING)


Structure = tuple[SiteSpec, int, tuple[tuple[str, int, int], ...]]


@st.composite
def sites(draw: st.DrawFn) -> tuple[SiteSpec, int]:
    """A site (one or two GPU models of a family, either contract, with or without a ramp and
    minimum times) and a horizon."""
    two_models = draw(st.booleans())
    gpus = (GpuFleet(gpu_model("H100 SXM"), 4),) + (
        (GpuFleet(gpu_model("H100 PCIe"), 3),) if two_models else ()
    )
    contract = draw(st.sampled_from((RtContract(4.0), PpaContract(40.0, 0.02, 2.0))))
    site = SiteSpec(
        name="s",
        node="N",
        capacity_mw=0.05,
        pue=draw(st.sampled_from((1.0, 1.25))),
        contract=contract,
        asics=(AsicFleet(asic_model("S21"), 10),),
        gpus=gpus,
        ramp_mw_per_step=draw(st.sampled_from((None, 0.01))),
        min_on_steps=draw(st.integers(1, 3)),
        min_off_steps=draw(st.integers(1, 3)),
    )
    return site, draw(st.integers(1, 6))


def windows(horizon: int) -> st.SearchStrategy[tuple[tuple[str, int, int], ...]]:
    """Job windows (family, release, deadline) around the horizon; A100 is a family the site
    lacks. Small ranges, so that different windows often make the same structure."""
    family = st.sampled_from(("H100", "A100"))
    window = st.tuples(family, st.integers(-2, horizon + 1), st.integers(-1, horizon + 2))
    return st.lists(window, max_size=3).map(tuple)


@st.composite
def structures(draw: st.DrawFn, site: tuple[SiteSpec, int] | None = None) -> Structure:
    spec, horizon = site or draw(sites())
    return spec, horizon, draw(windows(horizon))


@st.composite
def data_for(draw: st.DrawFn, structure: Structure) -> SiteInputs:
    """Inputs of `structure` with random data: prices, state, demand, work left, caps."""
    site, horizon, job_windows = structure
    floats = st.lists(st.floats(-100, 5000), min_size=horizon, max_size=horizon)
    jobs = tuple(
        JobInputs(
            job_id=f"j{i}",
            workload_class=draw(st.sampled_from(CLASSES)),
            family=family,
            max_gpus=draw(st.integers(1, 6)),
            remaining_gpu_steps=draw(st.integers(0, 30)),
            release=release,
            deadline=deadline,
            price_usd_per_gpu_hour=draw(st.floats(0.5, 5.0)),
        )
        for i, (family, release, deadline) in enumerate(job_windows)
    )
    recent = st.lists(st.integers(0, 5), max_size=3).map(tuple)
    state = AsicState(draw(st.integers(0, 10)), draw(recent), draw(recent))
    return SiteInputs(
        site=site,
        state=SiteState(draw(st.floats(0.0, 0.05)), {"S21": state}),
        step_hours=0.25,
        electricity_usd_per_mwh=np.array(draw(floats)),
        hashprice_usd_per_ths_day=np.full(horizon, draw(st.floats(0.03, 0.3))),
        gpu_spot_usd_per_gpu_hour={"H100": np.full(horizon, draw(st.floats(0, 3)))},
        realtime_gpus={"H100": np.array(draw(floats), dtype=float) % 8},
        realtime_price_usd_per_gpu_hour={"H100": draw(st.floats(1, 6))},
        jobs=jobs,
        sla_penalty_usd_per_gpu_hour=10.0,
        final=draw(st.booleans()),
        integer=draw(st.booleans()),
    )


@st.composite
def pairs(draw: st.DrawFn) -> tuple[SiteInputs, SiteInputs]:
    """Two inputs of one site and horizon, each with its own jobs and data."""
    site = draw(sites())
    return draw(data_for(draw(structures(site)))), draw(data_for(draw(structures(site))))


def assert_same_program(a: CompiledLp, b: CompiledLp) -> None:
    assert a.offset == b.offset
    for f in fields(CompiledLp):
        if f.name != "offset":
            left, right = getattr(a, f.name), getattr(b, f.name)
            assert left.dtype == right.dtype and np.array_equal(left, right), f.name


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pairs())
def test_inputs_of_the_same_structure_have_the_same_matrix(
    pair: tuple[SiteInputs, SiteInputs],
) -> None:
    first, second = (build_model(x).lp.compile() for x in pair)
    if structure_of(pair[0]) == structure_of(pair[1]):
        assert first.shape == second.shape
        assert np.array_equal(first.start, second.start)
        assert np.array_equal(first.index, second.index)
        assert np.array_equal(first.value, second.value)


@st.composite
def rolling_sequences(draw: st.DrawFn) -> list[SiteInputs]:
    """Inputs one after another whose structures come and go, as jobs arrive and leave."""
    site = draw(sites())
    kinds = draw(st.lists(structures(site), min_size=1, max_size=3))
    order = draw(st.lists(st.sampled_from(kinds), min_size=2, max_size=6))
    return [draw(data_for(structure)) for structure in order]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rolling_sequences())
def test_a_cached_program_is_the_fresh_one(sequence: list[SiteInputs]) -> None:
    cache = MatrixCache()
    for x in sequence:
        model, cached = cache.build(x)
        assert_same_program(cached, build_model(x).lp.compile())
        assert model.lp.num_cols == cached.shape[1]


def small_site(horizon: int) -> SiteInputs:
    return SiteInputs(
        site=SiteSpec("s", "N", 0.05, 1.1, RtContract(), asics=(AsicFleet(asic_model("S21"), 2),)),
        state=SiteState(0.0, {"S21": AsicState(0)}),
        step_hours=0.25,
        electricity_usd_per_mwh=np.full(horizon, 30.0),
        hashprice_usd_per_ths_day=np.full(horizon, 0.05),
        gpu_spot_usd_per_gpu_hour={},
        realtime_gpus={},
        realtime_price_usd_per_gpu_hour={},
        jobs=(),
        sla_penalty_usd_per_gpu_hour=10.0,
    )


def test_the_cache_rebuilds_only_the_data_while_the_structure_stays() -> None:
    x = small_site(4)
    cache = MatrixCache()
    first, _ = cache.build(x)
    again, program = cache.build(replace(x, electricity_usd_per_mwh=np.full(4, 900.0)))
    longer, _ = cache.build(small_site(5))
    assert first.lp.with_matrix and not again.lp.with_matrix and longer.lp.with_matrix
    with pytest.raises(ValueError, match="read-only"):  # shared by the programs of a structure
        program.value[0] = 2.0


def test_a_program_without_its_matrix_needs_one_of_its_shape() -> None:
    x = small_site(3)
    bare = build_model(x, with_matrix=False).lp
    with pytest.raises(ValueError, match="without its matrix"):
        bare.compile()
    longer = build_model(small_site(4)).lp.compile()
    with pytest.raises(ValueError, match="matrix of"):
        bare.compile(matrix=longer)


def test_a_run_highs_refuses_comes_back_failed_with_its_reason() -> None:
    """HiGHS refuses a run asking for another thread count than its thread's first run set up
    (here a plain Highs with two threads, in a thread of its own so that nothing else in the
    test process shares that scheduler): the solve says so instead of "Not Set"."""
    results: list[LpResult] = []
    program = build_model(small_site(2)).lp.compile()

    def on_a_fresh_thread() -> None:
        other = highspy.Highs()  # type: ignore[no-untyped-call]
        other.setOptionValue("output_flag", False)
        other.setOptionValue("threads", 2)
        other.addVar(0.0, 1.0)
        other.run()
        results.append(HighsSolver().solve(program))

    thread = threading.Thread(target=on_a_fresh_thread)
    thread.start()
    thread.join()
    assert results[0].status is SolveStatus.FAILED
    assert "refused" in results[0].reason
    assert HighsSolver().solve(program).status is SolveStatus.OPTIMAL  # this thread: one
