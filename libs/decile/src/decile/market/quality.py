"""Data-quality gate for bars of one timeframe: accept, reject with a reason, report gaps.

One rule set for every source (exchange feed, file replay, generator), run
as a handful of array operations over a whole batch, be it one cross-section
of 1,200 symbols or a million replayed rows. Pure: the clock (``now_ms``) and
the per-symbol history (:class:`QualityState`) are arguments, the new state is
returned. Nothing is repaired: bad rows are rejected with their values, gaps
are reported and never filled (a filled bar would be an invented price).

Each row gets the FIRST failing reason in :data:`REASONS` order: value checks
(NON_FINITE, NON_POSITIVE_PRICE, NEGATIVE_VOLUME, HIGH_LOW_INCONSISTENT), then
time checks (MISALIGNED, UNFINISHED), then sequence checks against earlier
rows of the same symbol (DUPLICATE, OUT_OF_ORDER). Only rows that pass the
value and time checks take part in the sequence checks, so a corrupt row can
neither advance a symbol's clock nor make a later good bar look duplicated.
Rows of a batch are judged in their order in the batch (arrival order).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from decile.market.bars import VALUE_FIELDS, Bars, union_symbols
from decile.market.timeframes import Timeframe, parse

__all__ = [
    "NO_TS",
    "REASONS",
    "Gaps",
    "QualityReason",
    "QualityResult",
    "QualityState",
    "Rejected",
    "check",
]

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
I8 = npt.NDArray[np.int8]

NO_TS: Final = int(np.iinfo(np.int64).min)
"""``last_ts`` of a symbol never accepted."""


class QualityReason(StrEnum):
    """Why a bar was rejected; the value is the stable code used in subjects and metrics."""

    NON_FINITE = "NON_FINITE"
    """A price or the volume is NaN or infinite."""
    NON_POSITIVE_PRICE = "NON_POSITIVE_PRICE"
    """A price is zero or negative."""
    NEGATIVE_VOLUME = "NEGATIVE_VOLUME"
    """Volume below zero (zero is a real, quiet bar)."""
    HIGH_LOW_INCONSISTENT = "HIGH_LOW_INCONSISTENT"
    """Not ``low <= open, close <= high``."""
    MISALIGNED = "MISALIGNED"
    """``ts`` is not a multiple of the timeframe (not a UTC bar boundary)."""
    UNFINISHED = "UNFINISHED"
    """The bar closes after ``now_ms``: a still-forming bar would leak the future into features."""
    DUPLICATE = "DUPLICATE"
    """Same symbol and ts as the symbol's last accepted bar or an earlier valid row of the batch."""
    OUT_OF_ORDER = "OUT_OF_ORDER"
    """Older than the newest bar already accepted for the symbol."""


REASONS: Final = tuple(QualityReason)
"""Reasons in priority order; ``Rejected.reason_code`` indexes this tuple."""
_R: Final = {r: np.int8(i) for i, r in enumerate(REASONS)}


def _ro(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
    view = a.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True, slots=True)
class QualityState:
    """Newest accepted bar time per symbol for one timeframe; everything the check remembers.

    Arrays keyed by a sorted symbol universe, so looking up 1,200 symbols is
    one ``searchsorted``, not 1,200 dict lookups. Rebuild it on restart with
    :meth:`from_dict` (e.g. from the last bars on the MD stream).
    """

    tf: Timeframe
    symbols: tuple[str, ...] = ()
    last_ts: I64 = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    def __post_init__(self) -> None:
        object.__setattr__(self, "tf", parse(self.tf))
        last = np.ascontiguousarray(self.last_ts, dtype=np.int64)
        if len(last) != len(self.symbols):
            raise ValueError("one last_ts per symbol")
        object.__setattr__(self, "last_ts", _ro(last))

    @classmethod
    def initial(cls, tf: str | Timeframe) -> QualityState:
        """No history: the first bar of every symbol is accepted without a gap."""
        return cls(parse(tf))

    @classmethod
    def from_dict(cls, tf: str | Timeframe, last_ts: Mapping[str, int]) -> QualityState:
        """State from ``{symbol: last accepted ts}``."""
        symbols = tuple(sorted(last_ts))
        return cls(parse(tf), symbols, np.array([last_ts[s] for s in symbols], dtype=np.int64))

    def to_dict(self) -> dict[str, int]:
        """``{symbol: last accepted ts}`` for symbols accepted at least once."""
        return {s: int(t) for s, t in zip(self.symbols, self.last_ts, strict=True) if t != NO_TS}

    def last(self, symbol: str) -> int | None:
        """Last accepted ts of ``symbol``, None if never accepted."""
        i = int(np.searchsorted(np.asarray(self.symbols, dtype=str), symbol)) if self.symbols else 0
        if i < len(self.symbols) and self.symbols[i] == symbol and self.last_ts[i] != NO_TS:
            return int(self.last_ts[i])
        return None

    def expanded(self, universe: Sequence[str]) -> I64:
        """``last_ts`` laid out over ``universe`` (a sorted superset); unknown symbols get NO_TS."""
        universe = tuple(universe)
        if universe == self.symbols:
            return np.array(self.last_ts)
        out = np.full(len(universe), NO_TS, dtype=np.int64)
        if self.symbols:
            out[
                np.searchsorted(
                    np.asarray(universe, dtype=str), np.asarray(self.symbols, dtype=str)
                )
            ] = self.last_ts
        return out


@dataclass(frozen=True, slots=True)
class Rejected:
    """Rejected rows with their values, reason and context, in batch order.

    ``index`` is the row's position in the checked batch; ``last_ts`` the
    symbol's newest accepted ts when the row was judged (NO_TS if none), the
    value that made a DUPLICATE or OUT_OF_ORDER.
    """

    rows: Bars
    index: I64
    reason_code: I8
    last_ts: I64
    tf: Timeframe
    now_ms: int

    def __len__(self) -> int:
        return len(self.index)

    @property
    def reasons(self) -> list[QualityReason]:
        """Reason per row (Python objects: rejections are few, this is off the hot path)."""
        return [REASONS[i] for i in self.reason_code.tolist()]

    def counts(self) -> dict[QualityReason, int]:
        """Rows per reason, only reasons that occurred; feeds the rejected_total metric."""
        n = np.bincount(self.reason_code, minlength=len(REASONS)).tolist() if len(self) else []
        return {r: k for r, k in zip(REASONS, n, strict=False) if k}

    def records(self) -> list[dict[str, Any]]:
        """One dict per row: ``symbol, ts, reason, values`` (observed values and the limit hit)."""
        rows = self.rows
        names = rows.symbol.tolist()
        cols = {f: getattr(rows, f).tolist() for f in VALUE_FIELDS}
        out: list[dict[str, Any]] = []
        for i, reason in enumerate(self.reasons):
            ts = int(rows.ts[i])
            values: dict[str, Any] = {f: cols[f][i] for f in VALUE_FIELDS}
            if reason is QualityReason.MISALIGNED:
                values["tf_ms"] = self.tf.ms
            elif reason is QualityReason.UNFINISHED:
                values |= {"close_ts": ts + self.tf.ms, "now_ms": self.now_ms}
            elif reason in (QualityReason.DUPLICATE, QualityReason.OUT_OF_ORDER):
                last = int(self.last_ts[i])
                values["last_ts"] = None if last == NO_TS else last
            out.append({"symbol": names[i], "ts": ts, "reason": reason, "values": values})
        return out


@dataclass(frozen=True, slots=True)
class Gaps:
    """Missing bars before accepted ones: per row, ``missing`` bars between ``prev_ts`` and ``ts``.

    One entry per accepted bar that follows a hole in its symbol's series
    (``missing >= 1``); a symbol's first bar ever has no gap. Never filled.
    """

    symbols: tuple[str, ...]
    code: I32
    prev_ts: I64
    ts: I64
    missing: I64

    def __len__(self) -> int:
        return len(self.code)

    @property
    def total(self) -> int:
        """Missing bars over all symbols."""
        return int(self.missing.sum())

    def by_symbol(self) -> dict[str, int]:
        """Missing bars per symbol (only symbols with a gap)."""
        n = np.bincount(self.code, weights=self.missing, minlength=len(self.symbols))
        return {self.symbols[i]: int(n[i]) for i in np.flatnonzero(n)}

    def records(self) -> list[dict[str, Any]]:
        """One dict per gap: ``symbol, prev_ts, ts, missing``."""
        return [
            {"symbol": self.symbols[c], "prev_ts": p, "ts": t, "missing": m}
            for c, p, t, m in zip(
                self.code.tolist(),
                self.prev_ts.tolist(),
                self.ts.tolist(),
                self.missing.tolist(),
                strict=True,
            )
        ]


@dataclass(frozen=True, slots=True)
class QualityResult:
    """Outcome of one :func:`check`: accepted rows (batch order), rejections, gaps, next state."""

    accepted: Bars
    rejected: Rejected
    gaps: Gaps
    state: QualityState


def check(bars: Bars, state: QualityState, now_ms: int) -> QualityResult:
    """Judge a batch of ``state.tf`` bars against the rules and the symbols' history.

    ``now_ms`` is the caller's clock (event time in a replay): a bar is final
    only when ``ts + tf <= now_ms``. The returned state must replace the old
    one; passing the same batch again then rejects every row as DUPLICATE.
    """
    tf = state.tf
    step = tf.ms
    universe = union_symbols(state.symbols, bars.symbols)
    code = bars.with_symbols(universe).code
    last = state.expanded(universe)
    ts = bars.ts
    o, h, lo, c, v = bars.open, bars.high, bars.low, bars.close, bars.volume

    reason = np.full(len(bars), -1, dtype=np.int8)

    def flag(mask: npt.NDArray[np.bool_], r: QualityReason) -> None:
        reason[(reason < 0) & mask] = _R[r]

    with np.errstate(invalid="ignore"):
        flag(
            ~(np.isfinite(o) & np.isfinite(h) & np.isfinite(lo) & np.isfinite(c) & np.isfinite(v)),
            QualityReason.NON_FINITE,
        )
        flag((o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0), QualityReason.NON_POSITIVE_PRICE)
        flag(v < 0, QualityReason.NEGATIVE_VOLUME)
        flag(
            ~((lo <= o) & (lo <= c) & (o <= h) & (c <= h) & (lo <= h)),
            QualityReason.HIGH_LOW_INCONSISTENT,
        )
    flag(ts % step != 0, QualityReason.MISALIGNED)
    flag(ts > now_ms - step, QualityReason.UNFINISHED)  # ts + step > now_ms, overflow-safe

    vi = np.flatnonzero(reason < 0)
    cv, tv = code[vi], ts[vi]
    state_last = last[cv]
    dup_batch, prev_max = _earlier_in_batch(cv, tv)
    dup = dup_batch | (tv == state_last)
    newest = np.maximum(state_last, prev_max)
    ooo = ~dup & (tv < newest)
    reason[vi[dup]] = _R[QualityReason.DUPLICATE]
    reason[vi[ooo]] = _R[QualityReason.OUT_OF_ORDER]

    ok = ~dup & ~ooo
    acc_code, acc_ts, acc_prev = cv[ok], tv[ok], newest[ok]
    has_prev = acc_prev != NO_TS
    missing = np.zeros(len(acc_ts), dtype=np.int64)
    missing[has_prev] = (acc_ts[has_prev] - acc_prev[has_prev]) // step - 1
    g = missing > 0
    gaps = Gaps(
        universe,
        _ro(acc_code[g].astype(np.int32)),
        _ro(acc_prev[g]),
        _ro(acc_ts[g]),
        _ro(missing[g]),
    )

    np.maximum.at(last, acc_code, acc_ts)
    new_state = QualityState(tf, universe, last)

    bad = np.flatnonzero(reason >= 0)
    context = np.full(len(reason), NO_TS, dtype=np.int64)
    context[vi] = newest
    rejected = Rejected(
        bars.take(bad),
        _ro(bad.astype(np.int64)),
        _ro(reason[bad]),
        _ro(context[bad]),
        tf,
        int(now_ms),
    )
    return QualityResult(bars.take(reason < 0), rejected, gaps, new_state)


def _earlier_in_batch(code: I32, ts: I64) -> tuple[npt.NDArray[np.bool_], I64]:
    """Per row: does an earlier row repeat its (symbol, ts)? And its symbol's newest earlier ts.

    Vectorised over the batch. The running maximum per symbol uses ranks of
    ``ts`` offset by a group number, so one ``maximum.accumulate`` serves all
    symbols without overflow whatever the ts values.
    """
    n = len(code)
    prev_max = np.full(n, NO_TS, dtype=np.int64)
    dup = np.zeros(n, dtype=bool)
    if n < 2 or np.all(code[1:] > code[:-1]):
        return dup, prev_max  # at most one row per symbol: the live-cycle case
    pos = np.arange(n)
    by_key = np.lexsort((pos, ts, code))  # symbol, ts, arrival
    same = (code[by_key][1:] == code[by_key][:-1]) & (ts[by_key][1:] == ts[by_key][:-1])
    dup[by_key[1:][same]] = True
    if np.all(code[by_key][1:] != code[by_key][:-1]):
        return dup, prev_max  # one row per symbol: the live-cycle case
    by_sym = np.argsort(code, kind="stable")  # symbol, arrival
    uniq_ts, rank = np.unique(ts, return_inverse=True)
    cs = code[by_sym]
    gid = np.cumsum(np.r_[True, cs[1:] != cs[:-1]]) - 1
    width = len(uniq_ts) + 1
    running = np.maximum.accumulate(gid * width + rank.reshape(-1)[by_sym] + 1)
    prev_rank = np.r_[-1, running[:-1]] - gid * width - 1  # < 0: no earlier row of the symbol
    has = prev_rank >= 0
    earlier = np.full(n, NO_TS, dtype=np.int64)
    earlier[has] = uniq_ts[prev_rank[has]]
    prev_max[by_sym] = earlier
    return dup, prev_max
