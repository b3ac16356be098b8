"""A linear program under construction, in the solver-neutral form every `Solver` reads:
maximise cost·x + offset subject to row_lower <= A x <= row_upper and lower <= x <= upper.

Variables and rows are added in blocks (numpy arrays of column indices), so a model over a
horizon is written once per kind of constraint, not once per interval. A column index of -1
in a row block means "no variable here" and is skipped.

A program built `with_matrix=False` records everything but the constraint matrix, for a
caller that knows the matrix is that of a program compiled before (a rolling horizon, whose
programs differ far more often in their data than in their structure): `compile(matrix=...)`
takes it from there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hcp.domain.market import FloatArray

IntArray = npt.NDArray[np.int64]
INF = math.inf


@dataclass(frozen=True, slots=True)
class CompiledLp:
    """The finished program: column data, row bounds and A in compressed-column form
    (column j's entries are `index[start[j]:start[j+1]]` rows with `value`s)."""

    cost: FloatArray
    offset: float
    lower: FloatArray
    upper: FloatArray
    integer: npt.NDArray[np.bool_]
    row_lower: FloatArray
    row_upper: FloatArray
    start: IntArray
    index: IntArray
    value: FloatArray

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns)."""
        return len(self.row_lower), len(self.cost)


class LinearProgram:
    """Columns, rows and objective being added block by block; `compile()` when done."""

    def __init__(self, with_matrix: bool = True) -> None:
        self.with_matrix = with_matrix
        self.num_cols = 0
        self.num_rows = 0
        self.offset = 0.0
        # Per block of columns: its size, whether integer, and each bound as a scalar or an
        # array (expanded once, in compile: a rolling horizon builds many small programs).
        self._sizes: list[int] = []
        self._integer: list[bool] = []
        self._lower: list[float | FloatArray] = []
        self._upper: list[float | FloatArray] = []
        self._rows: list[IntArray] = []
        self._cols: list[IntArray] = []
        self._values: list[FloatArray] = []
        self._row_sizes: list[int] = []  # per block of rows, its bounds as for columns
        self._row_lower: list[float | FloatArray] = []
        self._row_upper: list[float | FloatArray] = []
        self._cost_cols: list[IntArray] = []
        self._cost_values: list[FloatArray] = []
        self._tightened: list[tuple[IntArray, FloatArray, FloatArray]] = []

    def add_variables(
        self,
        shape: int | tuple[int, ...],
        lower: npt.ArrayLike = 0.0,
        upper: npt.ArrayLike = INF,
        integer: bool = False,
    ) -> IntArray:
        """New columns with bounds broadcast to `shape`; returns their indices in that shape."""
        size = shape if isinstance(shape, int) else math.prod(shape)
        index = np.arange(self.num_cols, self.num_cols + size)
        if not isinstance(shape, int):
            index = index.reshape(shape)
        self._sizes.append(size)
        self._integer.append(integer)
        self._lower.append(_bound(lower, index.shape))
        self._upper.append(_bound(upper, index.shape))
        self.num_cols += size
        return index

    def tighten(
        self, columns: npt.ArrayLike, lower: npt.ArrayLike = -INF, upper: npt.ArrayLike = INF
    ) -> None:
        """Narrow the bounds of existing `columns` to at least `lower` and at most `upper`."""
        cols = np.asarray(columns, dtype=np.int64).ravel()
        self._tightened.append((cols, _spread(lower, cols.size), _spread(upper, cols.size)))

    def add_rows(
        self,
        columns: IntArray,
        coefficients: npt.ArrayLike,
        lower: npt.ArrayLike = -INF,
        upper: npt.ArrayLike = INF,
    ) -> IntArray:
        """One row per line of `columns` (shape rows × terms; a 1-D array is one row), each
        term's coefficient from `coefficients` (scalar, per term, or rows × terms)."""
        if not isinstance(columns, np.ndarray) or columns.ndim != 2:
            columns = np.atleast_2d(columns)  # one row (1-D), a list, a scalar
            if columns.ndim != 2:
                raise ValueError(f"columns must be rows × terms, not of shape {columns.shape}")
        count, terms = columns.shape
        rows = np.arange(self.num_rows, self.num_rows + count)
        if self.with_matrix:
            coefs = np.asarray(coefficients, dtype=np.float64)
            values = _spread(coefs, columns.shape)  # per term (one per column), or rows × terms
            self._add_entries(np.repeat(rows, terms), columns.ravel(), values)
        self._row_sizes.append(count)
        self._row_lower.append(_bound(lower, (count,)))
        self._row_upper.append(_bound(upper, (count,)))
        self.num_rows += count
        return rows

    def add_terms(self, rows: npt.ArrayLike, columns: npt.ArrayLike, coefs: npt.ArrayLike) -> None:
        """Add coefficient `coefs` of column `columns` to existing rows `rows` (all broadcast)."""
        if not self.with_matrix:
            return
        r = np.asarray(rows, dtype=np.int64)
        c = np.asarray(columns, dtype=np.int64)
        v = np.asarray(coefs, dtype=np.float64)
        if r.shape == c.shape and v.ndim == 0:  # the usual case, without broadcast_arrays' cost
            self._add_entries(r.ravel(), c.ravel(), np.full(c.size, float(v)))
            return
        r, c, v = np.broadcast_arrays(r, c, v)
        self._add_entries(r.ravel(), c.ravel(), v.ravel())

    def _add_entries(self, rows: IntArray, cols: IntArray, values: FloatArray) -> None:
        if cols.size and cols.min() < 0:
            keep = cols >= 0
            rows, cols, values = rows[keep], cols[keep], values[keep]
        self._rows.append(rows)
        self._cols.append(cols)
        self._values.append(values)

    def add_objective(self, columns: npt.ArrayLike, coefs: npt.ArrayLike) -> None:
        """Add `coefs` (USD per unit) to the objective coefficients of `columns`."""
        cols = np.asarray(columns, dtype=np.int64)
        values = _spread(coefs, cols.shape)
        cols = cols.ravel()
        if cols.size and cols.min() < 0:
            cols, values = cols[cols >= 0], values[cols >= 0]
        self._cost_cols.append(cols)
        self._cost_values.append(values)

    def compile(self, matrix: CompiledLp | None = None) -> CompiledLp:
        """The program in array form, ready for a solver; its constraint matrix is taken from
        `matrix` where given (required without one of its own: see `with_matrix`)."""
        n = self.num_cols
        cost = np.bincount(_ints(self._cost_cols), _floats(self._cost_values), minlength=n)
        lower, upper = _expand(self._lower, self._sizes), _expand(self._upper, self._sizes)
        for cols, lows, highs in self._tightened:
            lower[cols] = np.maximum(lower[cols], lows)
            upper[cols] = np.minimum(upper[cols], highs)
        integer = np.repeat(np.array(self._integer, dtype=bool), self._sizes)
        if matrix is None:
            start, index, value = self._matrix()
        elif matrix.shape == (self.num_rows, n):
            start, index, value = matrix.start, matrix.index, matrix.value
        else:
            raise ValueError(f"matrix of {matrix.shape} for a program of {(self.num_rows, n)}")
        return CompiledLp(
            cost.astype(np.float64),
            self.offset,
            lower,
            upper,
            integer,
            _expand(self._row_lower, self._row_sizes),
            _expand(self._row_upper, self._row_sizes),
            start,
            index,
            value,
        )

    def _matrix(self) -> tuple[IntArray, IntArray, FloatArray]:
        """The entries added, in compressed-column form: start, row index, value."""
        if not self.with_matrix:
            raise ValueError("this program was built without its matrix: compile(matrix=...)")
        rows, cols, values = _ints(self._rows), _ints(self._cols), _floats(self._values)
        order = np.argsort(cols, kind="stable")
        start = np.zeros(self.num_cols + 1, dtype=np.int64)
        np.cumsum(np.bincount(cols, minlength=self.num_cols), out=start[1:])
        return start, rows[order], values[order]


def _spread(value: npt.ArrayLike, shape: int | tuple[int, ...]) -> FloatArray:
    """`value` (a scalar or an array broadcastable to `shape`) as a fresh flat float array."""
    size = shape if isinstance(shape, int) else math.prod(shape)
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        return np.full(size, float(array))
    if array.size == size and array.shape in (shape, (size,)):
        return array.ravel().copy()
    spread = np.empty(shape)
    spread[...] = array  # broadcast (an assignment: a third of np.broadcast_to's cost)
    return spread.ravel()


def _bound(value: float | npt.ArrayLike, shape: tuple[int, ...]) -> float | FloatArray:
    """A bound as given: a scalar stays a float, anything else is spread to `shape`."""
    if isinstance(value, float | int):
        return float(value)
    array = np.asarray(value, dtype=np.float64)
    return float(array) if array.ndim == 0 else _spread(array, shape)


def _expand(bounds: list[float | FloatArray], sizes: list[int]) -> FloatArray:
    """Every block's bound, one value per column: scalars repeated, arrays in place."""
    scalars = [b if isinstance(b, float) else 0.0 for b in bounds]
    out = np.repeat(np.array(scalars, dtype=np.float64), sizes)
    start = 0
    for bound, size in zip(bounds, sizes, strict=True):
        if not isinstance(bound, float):
            out[start : start + size] = bound
        start += size
    return out


def _ints(parts: list[IntArray]) -> IntArray:
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)


def _floats(parts: list[FloatArray]) -> FloatArray:
    return np.concatenate(parts).astype(np.float64) if parts else np.zeros(0)
