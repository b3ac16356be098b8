"""Plan one site: check the inputs, build the model, solve it, read the schedule back."""

from __future__ import annotations

import numpy as np

from hcp.domain.market import FloatArray
from hcp.optimizer.checks import check_inputs
from hcp.optimizer.inputs import SiteInputs
from hcp.optimizer.lp import CompiledLp
from hcp.optimizer.model import JobGpus, SiteModel, build_model, structure_of
from hcp.optimizer.plan import Plan, Schedule, SolveStatus
from hcp.optimizer.solver import Solver


class MatrixCache:
    """The constraint matrix of the last program built for one site, kept for the next one of
    the same structure (`structure_of`): a rolling horizon's next program mostly differs only
    in prices, state and work left (in four intervals out of five on ERCOT 2024), so only its
    bounds and costs are built again. The program is the same, byte for byte."""

    def __init__(self) -> None:
        self._structure: tuple[object, ...] | None = None
        self._last: CompiledLp | None = None

    def build(self, inputs: SiteInputs) -> tuple[SiteModel, CompiledLp]:
        """The model of `inputs` and its compiled program."""
        structure = structure_of(inputs)
        if self._last is not None and structure == self._structure:
            model = build_model(inputs, with_matrix=False)
            return model, model.lp.compile(matrix=self._last)
        model = build_model(inputs)
        lp = model.lp.compile()
        for shared in (lp.start, lp.index, lp.value):  # every later program of it shares them
            shared.setflags(write=False)
        self._structure, self._last = structure, lp
        return model, lp


def plan_site(inputs: SiteInputs, solver: Solver, matrices: MatrixCache | None = None) -> Plan:
    """The optimal plan for `inputs`, or a Plan whose status and reason say why there is none
    (BAD_INPUT lists the problems found by `check_inputs`). `matrices` keeps the constraint
    matrix from one call to the next (a rolling horizon)."""
    site = inputs.site.name
    problems = check_inputs(inputs)
    if problems:
        reason = "; ".join(str(p) for p in problems[:3])
        return Plan(site, SolveStatus.BAD_INPUT, reason, problems=tuple(problems))
    if matrices is None:
        model = build_model(inputs)
        lp = model.lp.compile()
    else:
        model, lp = matrices.build(inputs)
    result = solver.solve(lp)
    if result.status != SolveStatus.OPTIMAL or result.values is None:
        return Plan(site, result.status, result.reason)
    schedule = read_schedule(model, result.values)
    return Plan(site, SolveStatus.OPTIMAL, result.reason, result.objective, schedule=schedule)


def read_schedule(model: SiteModel, values: FloatArray) -> Schedule:
    """The solution `values` of `model` as a Schedule (tiny negative round-off removed)."""
    v, x = model.v, model.inputs
    solved = np.maximum(values, 0.0)
    asics = {
        fleet.model.name: dict(
            zip(
                (p.name for p in fleet.model.profiles),
                solved[v.asic.profiles[fleet.model.name]],
                strict=True,
            )
        )
        for fleet in x.site.asics
    }
    jobs = {name: _jobs_by_interval(x, gpus, solved) for name, gpus in v.jobs.gpus.items()}
    grid = solved[v.power.grid]
    sold = np.zeros(x.horizon) if v.power.sell is None else solved[v.power.sell]
    return Schedule(
        asics=asics,
        realtime={name: solved[cols] for name, cols in v.gpu.realtime.items()},
        spot={name: solved[cols] for name, cols in v.gpu.spot.items()},
        jobs=jobs,
        job_classes={job.job_id: job.workload_class for job in x.jobs},
        grid_mw=grid,
        sellback_mw=sold,
    )


def _jobs_by_interval(
    x: SiteInputs, gpus: JobGpus, solved: FloatArray
) -> dict[int, dict[str, float]]:
    """GPUs of one model per job, by interval: only the intervals and jobs given some."""
    by_interval: dict[int, dict[str, float]] = {}
    values = solved[gpus.cols]
    given = values > 0
    for t, j, n in zip(
        gpus.t[given].tolist(), gpus.job[given].tolist(), values[given].tolist(), strict=True
    ):
        by_interval.setdefault(t, {})[x.jobs[j].job_id] = n
    return by_interval
