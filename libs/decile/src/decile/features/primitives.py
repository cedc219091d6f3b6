"""The primitive vocabulary every feature is written in, and the math both engines share.

A feature is plain numpy over per-row arrays plus calls to the primitives of
:class:`Prims`. The offline engine hands the definition ``(T, S)`` panels
(row = a symbol's own bar index, column = symbol) and the online engine hands
it ``(m,)`` arrays (one entry per symbol of the cycle), so every elementwise
step is literally the same numpy call in both. Only the primitives differ:
each has an offline kernel vectorised over time (:mod:`decile.features.offline`)
and an online state vectorised over symbols (:mod:`decile.features.online`).
This module pins what each one means and holds the arithmetic they must share
so the two agree to the last bit wherever the algorithm allows.

Semantics common to every primitive:

* **Own sequence.** A window, lag or recurrence runs over the symbol's own
  bars in time order; a missing bar is not a bar (no fill). ``pos`` is the
  number of bars the symbol had before this one.
* **NaN in, NaN out.** A window holding a NaN is NaN; warm-up is NaN, never 0.
* **Blocks, not sliding sums.** Window sums use the two-stack block scheme
  (van Herk / Gil-Werman): blocks of ``w`` bars aligned on ``pos``; the window
  ending at ``pos`` is the suffix of the previous block plus the prefix of the
  current one, each summed strictly in sequence. Why: a sliding ``+x -x`` sum
  drifts with the whole history (a window of zero volume comes out 1e-13, not
  0) and a NaN would poison it for ever; block sums bound the error by one
  window, reset every ``w`` bars, and are bit-identical however the bars are
  batched.
* **Centred moments.** Prices are centred on an anchor (the first value of the
  previous block) before squaring, so a 20-bar variance of a 50,000 price
  does not cancel catastrophically.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt

__all__ = [
    "EMA_BLOCK",
    "EMA_SUPER",
    "F64",
    "I64",
    "N_TERMS",
    "VAR_FLOOR",
    "Prims",
    "SumKind",
    "Trace",
    "ema_consts",
    "sum_result",
    "sum_terms",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

VAR_FLOOR: Final = 1e-10
"""A window variance below ``VAR_FLOOR`` x the window's mean square is zero.

Only a degenerate window (every value equal) gets near it; rounding leaves
it at +-1e-20 instead of 0, and a z-score of that would be garbage. A real
window's ratio is above 1e-6 (the anchor lies within two windows).
"""

HtfFn = Callable[["Prims"], dict[str, Any]]


class Prims(Protocol):
    """What a feature definition may use besides elementwise numpy.

    Arrays are ``(T, S)`` offline and ``(m,)`` online; a definition must not
    depend on which (no reductions, no reshapes, no Python branching on values).
    """

    @property
    def open(self) -> F64: ...
    @property
    def high(self) -> F64: ...
    @property
    def low(self) -> F64: ...
    @property
    def close(self) -> F64: ...
    @property
    def volume(self) -> F64: ...
    @property
    def close_ts(self) -> I64:
        """Bar close time, ms since the epoch UTC (open ``ts`` + the bar length)."""
        ...

    def lag(self, x: F64, k: int) -> F64:
        """``x`` of the symbol's ``k``-th previous bar; NaN for its first ``k`` bars."""
        ...

    def ema(
        self,
        x: F64,
        alpha: float,
        *,
        start: int = 0,
        seed: int = 1,
        seed_div: float | None = None,
    ) -> F64:
        """Exponential average ``y += alpha * (x - y)`` seeded like TA-Lib.

        ``x`` is valid from ``pos == start`` (finite from then on: a NaN would
        stick). The first output is at ``pos == start + seed - 1`` and is the
        plain sum of those ``seed`` values over ``seed_div`` (default
        ``seed``), i.e. an SMA seed; Wilder smoothing is ``alpha = 1/n``.
        """
        ...

    def wsum(self, x: F64, w: int) -> F64:
        """Sum of the last ``w`` values (this bar included)."""
        ...

    def wmean_var(self, x: F64, w: int, *, center: bool) -> tuple[F64, F64]:
        """Mean and population variance of the last ``w`` values.

        ``center`` subtracts a block anchor first: needed for price levels,
        pointless for returns (and an anchor must be finite: price-like only).
        """
        ...

    def wslope(self, y: F64, w: int) -> tuple[F64, F64]:
        """Least-squares slope of ``y`` per bar over the last ``w`` bars, and its R^2."""
        ...

    def wmax(self, x: F64, w: int) -> F64:
        """Max of the last ``w`` values (exact: a max has no rounding)."""
        ...

    def wsince_max(self, x: F64, w: int) -> F64:
        """Bars since the max of the last ``w`` values (0 = this bar; ties: the most recent).

        ``x`` must be finite (highs, negated lows): the bookkeeping compares values.
        """
        ...

    def wmad(self, x: F64, center: F64, w: int) -> F64:
        """Mean of ``|x[t-j] - center[t]|`` for ``j < w``: the CCI mean deviation.

        Recomputed over the window each bar (the centre moves), in lag order.
        """
        ...

    def cumsum(self, x: F64) -> F64:
        """Running total over the symbol's whole sequence (OBV); ``x`` finite."""
        ...

    def day_cumsum(self, x: F64) -> F64:
        """Running total over the symbol's bars opened in the same UTC day."""
        ...

    def prev_day_max(self, x: F64) -> F64:
        """Max of ``x`` over the previous UTC calendar day; NaN if the symbol had no bar then."""
        ...

    def ref(self, x: F64, symbol: str) -> F64:
        """``x`` of ``symbol`` at the same bar time (same cross-section); NaN when it is absent."""
        ...

    def htf(self, tf: str, fn: HtfFn) -> dict[str, F64]:
        """``fn`` evaluated on the symbol's ``tf`` bars, as of the last CLOSED one.

        A ``tf`` bar is the symbol's own base bars opened in one UTC-aligned
        period (open first, high max, low min, close last, volume summed in
        order). It is closed at a base bar when that bar's close time reaches
        the period end, or when the symbol's next bar falls in a later period.
        The forming period is never used.
        """
        ...


# -- window sums: the terms summed and what is made of the sums ----------------

SumKind = str
"""``"sum"``, ``"meanvar"`` or ``"slope"``."""

N_TERMS: Final = {"sum": 1, "meanvar": 2, "slope": 3}


def sum_terms(
    kind: SumKind, xs: Sequence[Any], anchor: Any, t: Any, out: Sequence[Any] | None = None
) -> list[Any]:
    """The values a window sums, from raw inputs, the block anchor and time offsets.

    One function for both engines, so the terms are the same floating-point
    operations on the same numbers (``out`` only says where to write them).
    ``anchor`` is subtracted from ``xs[0]`` (0.0 when uncentred); ``t`` is the
    bar's offset from the anchor block's first bar (slope only).
    """
    n = N_TERMS.get(kind)
    if n is None:
        raise ValueError(f"unknown window kind {kind!r}")
    o = list(out) if out is not None else [None] * n
    if kind == "sum":
        if o[0] is None:
            return [xs[0]]
        np.copyto(o[0], xs[0])
        return o
    if isinstance(anchor, float) and anchor == 0.0:  # uncentred: x - 0.0 is x, bit for bit
        u = xs[0] if o[0] is None else o[0]
        if o[0] is not None:
            np.copyto(o[0], xs[0])
    else:
        u = np.subtract(xs[0], anchor, out=o[0])
    terms = [u, np.multiply(u, u, out=o[1])]
    if kind == "slope":
        terms.append(np.multiply(t, u, out=o[2]))
    return terms


def _floor_var(var: Any, mean_sq: Any) -> Any:
    return np.where(var <= VAR_FLOOR * mean_sq, 0.0, var)


def sum_result(kind: SumKind, sums: Sequence[Any], w: int, anchor: Any, t: Any) -> Any:
    """Window statistics from window sums (see :class:`Prims` for each kind).

    ``anchor`` and ``t`` are the current bar's pre-anchor and offset, as in
    :func:`sum_terms`.
    """
    if kind == "sum":
        return sums[0]
    if kind == "meanvar":
        m = sums[0] / w
        msq = sums[1] / w
        mean = m if isinstance(anchor, float) and anchor == 0.0 else anchor + m
        return mean, _floor_var(msq - m * m, msq)
    if kind == "slope":
        su, suu, stu = sums
        st = w * t - w * (w - 1) / 2.0  # sum of the window's offsets, exact
        d = w * (w * w - 1) / 12.0  # sum of squared deviations of 0..w-1
        slope = (stu - st * su / w) / d
        m = su / w
        msq = suu / w
        var_u = _floor_var(msq - m * m, msq)
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = np.where(var_u > 0, slope * slope * (d / w) / var_u, np.nan)
        return slope, r2
    raise ValueError(f"unknown window kind {kind!r}")


EMA_BLOCK: Final = 64
"""Bars per block of the blocked EMA (both engines: it fixes the rounding)."""
EMA_SUPER: Final = 16
"""Blocks per super-block: the carries between blocks are themselves blocked once more."""


def ema_consts(alpha: float) -> tuple[F64, F64]:
    """Decay powers for the blocked EMA: ``beta**(j+1)`` for ``j < EMA_BLOCK``, and
    ``d**(i+1)`` for ``i < EMA_SUPER`` with ``d = beta**EMA_BLOCK``; ``beta = 1 - alpha``.

    The EMA after its seed is evaluated in blocks of ``B`` bars: a local
    recurrence ``L += alpha * (x - L)`` from ``L = 0`` at each block start, and
    ``y = L + beta**(j+1) * Y`` with ``Y`` the value carried into the block.
    The carries obey ``Y' = L_last + d * Y``, evaluated the same way over
    super-blocks of ``EMA_SUPER`` blocks: ``M = L_last + d * M`` (from the
    super-block's first block), ``Y = M + d**(i+1) * Z`` with ``Z`` the value
    carried into the super-block, ``Z' = M_last + d**EMA_SUPER * Z``.
    Mathematically the textbook ``y += alpha * (x - y)``; written this way the
    offline engine runs it as a few hundred array operations over all blocks
    and symbols, and the online state performs the very same floating-point
    operations, so the two agree to the bit. It differs from the sequential
    recurrence by a few ulps (the TA-Lib test bounds it).
    """
    beta = 1.0 - alpha
    powers: F64 = beta ** np.arange(1, EMA_BLOCK + 1, dtype=np.float64)
    super_powers: F64 = powers[-1] ** np.arange(1, EMA_SUPER + 1, dtype=np.float64)
    return powers, super_powers


# -- tracing: the definition's primitive calls, for the schema version ---------


class Trace:
    """A :class:`Prims` that records each primitive call and its parameters.

    The schema version hashes this list, so changing a window, a period or a
    seed changes the version even if nobody edits the spec table.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        one = np.ones(1)
        self.open = self.high = self.low = self.close = self.volume = one
        self.close_ts = np.zeros(1, dtype=np.int64)

    def _rec(self, *call: Any) -> F64:
        self.calls.append(tuple(repr(c) if isinstance(c, float) else c for c in call))
        return np.ones(1)

    def lag(self, x: F64, k: int) -> F64:
        return self._rec("lag", k)

    def ema(
        self,
        x: F64,
        alpha: float,
        *,
        start: int = 0,
        seed: int = 1,
        seed_div: float | None = None,
    ) -> F64:
        return self._rec("ema", float(alpha), start, seed, seed_div)

    def wsum(self, x: F64, w: int) -> F64:
        return self._rec("wsum", w)

    def wmean_var(self, x: F64, w: int, *, center: bool) -> tuple[F64, F64]:
        return self._rec("wmean_var", w, center), np.ones(1)

    def wslope(self, y: F64, w: int) -> tuple[F64, F64]:
        return self._rec("wslope", w), np.ones(1)

    def wmax(self, x: F64, w: int) -> F64:
        return self._rec("wmax", w)

    def wsince_max(self, x: F64, w: int) -> F64:
        return self._rec("wsince_max", w)

    def wmad(self, x: F64, center: F64, w: int) -> F64:
        return self._rec("wmad", w)

    def cumsum(self, x: F64) -> F64:
        return self._rec("cumsum")

    def day_cumsum(self, x: F64) -> F64:
        return self._rec("day_cumsum")

    def prev_day_max(self, x: F64) -> F64:
        return self._rec("prev_day_max")

    def ref(self, x: F64, symbol: str) -> F64:
        return self._rec("ref", symbol)

    def htf(self, tf: str, fn: HtfFn) -> dict[str, F64]:
        sub = Trace()
        with np.errstate(all="ignore"):
            out = fn(sub)
        self.calls.append(("htf", str(tf), tuple(sub.calls), tuple(out)))
        return {k: np.ones(1) for k in out}
