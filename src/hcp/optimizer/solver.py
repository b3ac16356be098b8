"""The `Solver` port and its HiGHS implementation (highspy). A solve returns its status as data.

HiGHS is reused between solves: when a program has the same shape as the previous one (a
rolling horizon re-solved every interval), the previous optimal basis is offered as a warm
start, which HiGHS checks and drops if it does not fit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import highspy
import numpy as np

from hcp.domain.market import FloatArray
from hcp.optimizer.lp import CompiledLp
from hcp.optimizer.plan import SolveStatus

log = logging.getLogger(__name__)

_MODEL_STATUS = {
    highspy.HighsModelStatus.kOptimal: SolveStatus.OPTIMAL,
    highspy.HighsModelStatus.kInfeasible: SolveStatus.INFEASIBLE,
    highspy.HighsModelStatus.kUnbounded: SolveStatus.UNBOUNDED,
    highspy.HighsModelStatus.kUnboundedOrInfeasible: SolveStatus.INFEASIBLE,
}


@dataclass(frozen=True, slots=True)
class LpResult:
    """A solve's outcome: status, reason (the solver's words), values when optimal."""

    status: SolveStatus
    reason: str
    values: FloatArray | None = None
    objective: float = 0.0


class Solver(Protocol):
    def solve(self, lp: CompiledLp) -> LpResult:
        """Maximise `lp`; never raises for an infeasible or unbounded program."""
        ...


class HighsSolver:
    """HiGHS through highspy: dual simplex for LPs, branch and cut for MILPs.

    `mip_rel_gap` is the relative optimality gap accepted for a MILP; `time_limit_s` bounds one
    solve (a solve stopped by it reports FAILED). `presolve=False` suits many small programs
    solved in a row (a rolling horizon): presolving them costs more than it saves.

    HiGHS runs on one thread: its dual simplex is serial anyway, and with the thread count
    left to HiGHS (0) each run of the rolling horizon's 8-interval programs took 0.18 ms
    instead of 0.14 ms, for the same solutions. HiGHS sets up its scheduler on a thread's
    first run and refuses a later run there that asks for another count: every solve in this
    package goes through here, and a refused run comes back FAILED with HiGHS's reason.
    """

    def __init__(
        self, mip_rel_gap: float = 1e-7, time_limit_s: float = 300.0, presolve: bool = True
    ) -> None:
        self._highs = highspy.Highs()  # type: ignore[no-untyped-call]
        self._highs.setOptionValue("output_flag", False)
        self._highs.setOptionValue("threads", 1)
        self._highs.setOptionValue("presolve", "choose" if presolve else "off")
        self._highs.setOptionValue("mip_rel_gap", mip_rel_gap)
        self._highs.setOptionValue("time_limit", time_limit_s)
        self._basis: tuple[tuple[int, int], Any] | None = None

    def solve(self, lp: CompiledLp) -> LpResult:
        """Maximise `lp` with HiGHS."""
        highs = self._highs
        _pass_model(highs, lp)
        warm = not lp.integer.any()
        if warm and self._basis is not None and self._basis[0] == lp.shape:
            highs.setBasis(self._basis[1])
        if highs.run() == highspy.HighsStatus.kError:
            self._basis = None
            log.error("HiGHS refused to run a program of %d rows × %d columns", *lp.shape)
            return LpResult(SolveStatus.FAILED, "HiGHS refused to run (an error before solving)")
        status = _MODEL_STATUS.get(highs.getModelStatus(), SolveStatus.FAILED)
        reason = highs.modelStatusToString(highs.getModelStatus())
        if status != SolveStatus.OPTIMAL:
            self._basis = None
            return LpResult(status, reason)
        if warm:
            self._basis = (lp.shape, highs.getBasis())
        values = np.asarray(highs.getSolution().col_value, dtype=np.float64)
        return LpResult(status, reason, values, float(highs.getInfo().objective_function_value))


def _pass_model(highs: highspy.Highs, lp: CompiledLp) -> None:
    """Hand `lp` to HiGHS as a maximisation with a column-wise matrix (infinite bounds are
    HiGHS's infinity: it treats anything beyond 1e20 so)."""
    rows, cols = lp.shape
    highs.passModel(
        cols,
        rows,
        len(lp.value),
        int(highspy.MatrixFormat.kColwise),
        int(highspy.ObjSense.kMaximize),
        lp.offset,
        lp.cost,
        lp.lower,
        lp.upper,
        lp.row_lower,
        lp.row_upper,
        lp.start[:-1].astype(np.int32),
        lp.index.astype(np.int32),
        lp.value,
        lp.integer.astype(np.int32),
    )
