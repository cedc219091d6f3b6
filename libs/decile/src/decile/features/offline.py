"""Offline engine: every feature over whole histories, vectorised over time and symbols.

Bars are laid out as a ``(T, S)`` panel: column = symbol, row ``k`` = that
symbol's ``k``-th bar (its own sequence, left-aligned, NaN below its last
bar). The row index is therefore ``pos`` for every symbol, which is what lets
the panel kernels reproduce the online states operation for operation: a
block of ``w`` bars is rows ``[b*w, (b+1)*w)`` of every column, a seed is one
row, a lag is a row shift, warm-up is a row range. Window and EMA kernels lay
a series out as ``(position in block, block, symbol)`` slabs and scan them
with one contiguous numpy operation per position, so a 35,000-bar history
costs a few hundred array operations, not 35,000.

Why numpy rather than polars expressions: the kernels must perform the same
floating-point operations in the same order as the online states (the parity
test holds them to the bit), which polars' rolling and EWM implementations do
not promise; polars is the output format (:meth:`OfflineFeatures.to_polars`).

Symbols are processed in column chunks that fit in cache, in two threads.
The reference symbols (BTC, ETH) go first; what each ``ref`` call reads from
them is captured there and looked up by the later chunks, so cross-pair
features cost no second pass.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import polars as pl

from decile.features.primitives import (
    EMA_BLOCK,
    EMA_SUPER,
    F64,
    I64,
    N_TERMS,
    HtfFn,
    ema_consts,
    sum_result,
    sum_terms,
)
from decile.features.schema import SCHEMA, FeatureSchema
from decile.market.bars import Bars
from decile.market.timeframes import BASE, Timeframe, align, parse

__all__ = ["OfflineContext", "OfflineFeatures", "Panel", "compute_offline", "evaluate"]

Mask = npt.NDArray[np.bool_]
_NAN: Final = np.nan
DEFAULT_CHUNK_CELLS: Final = 600_000
"""Panel cells per chunk (5 MB per array): wide enough that one numpy call covers many
symbols, small enough that a kernel's working set stays in cache."""
_DAY_MS: Final = 86_400_000


class Panel:
    """Bars of ``S`` symbols as ``(T, S)`` arrays; row ``k`` = each symbol's ``k``-th bar.

    ``ts`` is -1 below a symbol's last bar and prices are NaN there. Price
    columns are built on first use (a 4h panel rarely needs its volume).
    """

    __slots__ = ("_cache", "_load", "lengths", "rows", "symbols", "ts")

    def __init__(
        self,
        symbols: tuple[str, ...],
        lengths: I64,
        ts: I64,
        load: Callable[[str], F64],
        rows: I64,
    ) -> None:
        self.symbols = symbols
        self.lengths = lengths
        self.ts = ts
        self.rows = rows  # each cell's row in the source bars, -1 for none
        self._load = load
        self._cache: dict[str, F64] = {}

    @property
    def shape(self) -> tuple[int, int]:
        t, s = self.ts.shape
        return t, s

    @property
    def valid(self) -> Mask:
        """Cells holding a bar."""
        return self.ts >= 0

    def field(self, name: str) -> F64:
        """``open``, ``high``, ``low``, ``close`` or ``volume``."""
        arr = self._cache.get(name)
        if arr is None:
            arr = self._cache[name] = self._load(name)
        return arr

    @classmethod
    def from_bars(cls, bars: Bars, codes: Iterable[int] | None = None) -> Panel:
        """The panel of ``bars`` (any row order), optionally only some symbol codes.

        ``ValueError`` if a symbol has two bars at one time.
        """
        return _Layout(bars).panel(codes)


class _Layout:
    """Rows of ``bars`` grouped by symbol in time order: sorted once, sliced per chunk.

    Raises ``ValueError`` if a symbol has two bars at one time (the quality
    check must have run): a panel row is a bar, so a duplicate has no place.
    """

    def __init__(self, bars: Bars) -> None:
        self.bars = bars
        if bars.is_sorted():  # loaders deliver (ts, symbol): a stable sort by symbol suffices
            self.order = np.argsort(bars.code, kind="stable")
        else:
            self.order = np.lexsort((bars.ts, bars.code))
        code = bars.code[self.order]
        self.counts = np.bincount(code, minlength=len(bars.symbols)).astype(np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)
        ts = bars.ts[self.order]
        if len(ts) > 1:
            dup = (code[1:] == code[:-1]) & (ts[1:] == ts[:-1])
            if dup.any():
                i = int(np.flatnonzero(dup)[0])
                raise ValueError(
                    f"{bars.symbols[code[i]]} has two bars at ts={int(ts[i])}; "
                    "run the quality check first"
                )

    def panel(self, codes: Iterable[int] | None = None) -> Panel:
        bars = self.bars
        cols = np.flatnonzero(self.counts) if codes is None else np.fromiter(codes, np.int64)
        lengths = self.counts[cols]
        t, s = int(lengths.max(initial=0)), len(cols)
        rows = np.full((t, s), -1, dtype=np.int64)
        for j, c in enumerate(cols.tolist()):
            a, n = int(self.starts[c]), int(self.counts[c])
            rows[:n, j] = self.order[a : a + n]
        valid = rows >= 0
        everywhere = bool(valid.all())
        src = rows if everywhere else np.where(valid, rows, 0)

        def grid(a: Any, fill: Any) -> Any:
            out = a[src]
            if not everywhere:
                out[~valid] = fill
            return out

        return Panel(
            tuple(bars.symbols[c] for c in cols.tolist()),
            lengths,
            grid(bars.ts, -1),
            lambda name: grid(getattr(bars, name), _NAN),  # type: ignore[no-any-return]
            rows,
        )


class _Runs:
    """Maximal runs of one key down each column (a UTC day, a 1h period...).

    Worked out in column-major order, where a column is contiguous and a run
    is a contiguous range of bars: a run is a global id ``g``; per-run values
    live in 1-D ``(G,)`` arrays, or in a ``(longest, G)`` grid when a run must
    be scanned bar by bar (one contiguous numpy call per position, the order
    the online state folds it in). ``rm`` maps each bar back to its cell of
    the row-major ``(T, S)`` panel, so values go in and out with one ``take``.
    """

    def __init__(self, key: I64, valid: Mask) -> None:
        t, s = key.shape
        kt = np.ascontiguousarray(key.T).ravel()
        vt = np.ascontiguousarray(valid.T).ravel()
        new = vt.copy()
        new[1:] &= kt[1:] != kt[:-1]
        new[::t] = vt[::t]  # a column's first bar starts a run
        self.shape = (t, s)
        cm = np.flatnonzero(vt)  # bars, column-major
        self.rm = (cm % t) * s + cm // t  # the same bars' row-major cells
        self.gid = np.cumsum(new)[cm] - 1
        starts = np.flatnonzero(new)
        self.n = len(starts)
        self.col = starts // t  # each run's column
        self.rid = np.arange(self.n) - np.searchsorted(self.col, self.col)  # index in its column
        self.n_rows = int(self.rid.max(initial=-1)) + 1
        off = cm - starts[self.gid]
        self.longest = int(off.max(initial=-1)) + 1
        self.key = kt[starts]
        self.key_at = kt[cm]  # each bar's key
        nxt = np.ones(len(vt), dtype=bool)
        nxt[:-1] = new[1:] | ~vt[1:]
        nxt[t - 1 :: t] = True  # a column's last row ends its run
        last = np.flatnonzero(vt & nxt)
        self.last = (last % t) * s + last // t  # row-major cell of each run's last bar
        self.first = (starts % t) * s + starts // t  # ... and first bar
        self._grid_at = off * self.n + self.gid

    def at_bars(self, x: Any) -> Any:
        """``x`` (a ``(T, S)`` panel) at every bar, in run order."""
        return np.ravel(x).take(self.rm)

    def to_panel(self, values: Any) -> F64:
        """Per-bar values (run order) back into a ``(T, S)`` panel, NaN where no bar."""
        out = np.full(self.shape[0] * self.shape[1], _NAN)
        out.put(self.rm, values)
        return out.reshape(self.shape)

    def grid(self, x: F64, fill: float) -> F64:
        """``(longest, G)``: bar ``j`` of run ``g`` at ``[j, g]``."""
        g = np.full(max(self.longest, 1) * max(self.n, 1), fill)
        g.put(self._grid_at, self.at_bars(x))
        return g.reshape(max(self.longest, 1), max(self.n, 1))

    def scan_sum(self, x: F64) -> F64:
        """Running total within each run at every bar (run order), added in bar order."""
        g = self.grid(x, 0.0)
        for j in range(1, g.shape[0]):
            np.add(g[j - 1], g[j], out=g[j])
        out: F64 = g.ravel().take(self._grid_at)
        return out

    def of_previous_run(self, per_run: Any) -> F64:
        """``per_run`` of the run before each bar's own in its column (NaN for a first run)."""
        ext = np.append(np.asarray(per_run, dtype=np.float64), _NAN)
        prev = np.where(self.rid[self.gid] >= 1, self.gid - 1, self.n)
        out: F64 = ext.take(prev)
        return out

    def to_rows(self, per_run: F64) -> F64:
        """``(n_rows, S)``: each column's runs left-aligned, NaN below."""
        out = np.full(max(self.n_rows, 1) * self.shape[1], _NAN)
        out[self.rid * self.shape[1] + self.col] = per_run
        return out.reshape(max(self.n_rows, 1), self.shape[1])


class OfflineContext:
    """:class:`~decile.features.primitives.Prims` over a :class:`Panel` (whole histories)."""

    def __init__(
        self,
        panel: Panel,
        tf: Timeframe,
        refs: dict[str, int] | None = None,
        captured: _Captured | None = None,
    ) -> None:
        self.panel = panel
        self.tf = tf
        self._refs = refs or {}
        self._ref_rows: dict[str, Any] = {}
        self._days: _Runs | None = None
        self._captured = captured
        self._ref_calls = 0

    @property
    def open(self) -> F64:
        return self.panel.field("open")

    @property
    def high(self) -> F64:
        return self.panel.field("high")

    @property
    def low(self) -> F64:
        return self.panel.field("low")

    @property
    def close(self) -> F64:
        return self.panel.field("close")

    @property
    def volume(self) -> F64:
        return self.panel.field("volume")

    @property
    def close_ts(self) -> I64:
        return self.panel.ts + self.tf.ms

    # -- lag, recurrences ----------------------------------------------------
    def lag(self, x: F64, k: int) -> F64:
        t = x.shape[0]
        out = np.empty(x.shape)
        out[: min(k, t)] = _NAN
        if k < t:
            out[k:] = x[: t - k]
        return out

    def ema(
        self,
        x: F64,
        alpha: float,
        *,
        start: int = 0,
        seed: int = 1,
        seed_div: float | None = None,
    ) -> F64:
        t, s = x.shape
        out = np.empty(x.shape)
        r0 = start + seed - 1
        out[: min(r0, t)] = _NAN
        if r0 >= t:
            return out
        acc = x[start].copy()
        for r in range(start + 1, r0 + 1):
            acc = acc + x[r]
        carry = acc / (seed if seed_div is None else seed_div)
        out[r0] = carry
        m = t - r0 - 1
        if m <= 0:
            return out
        # blocked scan (primitives.ema_consts): local recurrences, then blocked carries;
        # on (position in block, block, symbol) slabs so every step is one contiguous op
        b, sb = EMA_BLOCK, EMA_SUPER
        lv = _slabs(x[r0 + 1 :], b)
        nb = lv.shape[1]
        ns = -(-nb // sb)
        lv[0] *= alpha  # from L = 0: 0 + a*(x - 0), exactly a*x
        for j in range(1, b):  # L += a*(x - L), in place: the same three roundings
            cur, prev = lv[j], lv[j - 1]
            cur -= prev
            cur *= alpha
            cur += prev
        powers, super_powers = ema_consts(alpha)
        d, d_super = powers[-1], super_powers[-1]
        ms = np.full((ns * sb, s), _NAN)  # block ends, then their local carries M
        ms[:nb] = lv[b - 1]
        ms = ms.reshape(ns, sb, s)
        for i in range(1, sb):
            ms[:, i] += d * ms[:, i - 1]
        zs = np.empty((ns, s))  # carried into each super-block
        zs[0] = carry
        for k in range(ns - 1):
            np.multiply(zs[k], d_super, out=zs[k + 1])
            zs[k + 1] += ms[k, sb - 1]
        ys = np.empty((ns, sb, s))  # carried into each block
        ys[:, 0] = zs
        ys[:, 1:] = ms[:, :-1] + super_powers[:-1, None] * zs[:, None, :]
        lv += powers[:, None, None] * ys.reshape(ns * sb, s)[None, :nb]
        out[r0 + 1 :] = _unslab(lv, m)
        return out

    def cumsum(self, x: F64) -> F64:
        return np.cumsum(x, axis=0)

    # -- windows ----------------------------------------------------------
    def _sums(self, kind: str, xs: list[F64], w: int, center: bool) -> Any:
        """Window sums on ``(w, blocks, S)`` slabs: one contiguous numpy call per block position."""
        t = xs[0].shape[0]
        xsl = [_slabs(x, w) for x in xs]
        _, nb, s = xsl[0].shape
        k = N_TERMS[kind]
        j = np.arange(w, dtype=np.float64)[:, None, None]
        t_pre = j + np.where(np.arange(nb) >= 1, float(w), 0.0)[None, :, None]
        p = np.empty((w, k, nb, s))
        pre: Any = 0.0
        if center or kind == "slope":
            own = xsl[0][0]  # each block's first value
            pre = np.concatenate([own[:1], own[:-1]])[None]
            sum_terms(kind, xsl, pre, t_pre, out=[p[:, i] for i in range(k)])
            q = np.empty((w, k, nb, s))
            sum_terms(kind, xsl, own[None], j, out=[q[:, i] for i in range(k)])
        else:
            sum_terms(kind, xsl, 0.0, t_pre, out=[p[:, i] for i in range(k)])
            q = np.empty((w, k, nb, s))  # the suffix scan reads p before the prefix scan
            q[w - 1] = p[w - 1]
            for i in range(w - 2, -1, -1):
                np.add(p[i], q[i + 1], out=q[i])
        for i in range(1, w):
            np.add(p[i - 1], p[i], out=p[i])
        if center or kind == "slope":
            for i in range(w - 2, -1, -1):
                np.add(q[i], q[i + 1], out=q[i])
        # window = suffix of the previous block + prefix of this one, written over q; a
        # block's last bar: its prefix alone; the first block's partial windows: warm-up
        np.add(q[1:, :, :-1], p[:-1, :, 1:], out=q[:-1, :, 1:])  # numpy buffers the overlap
        q[:-1, :, 0] = _NAN
        q[w - 1] = p[w - 1]
        out = sum_result(kind, [q[:, i] for i in range(k)], w, pre, t_pre)
        if isinstance(out, tuple):
            return tuple(_unslab(o, t) for o in out)
        return _unslab(out, t)

    def wsum(self, x: F64, w: int) -> F64:
        out: F64 = self._sums("sum", [x], w, False)
        return out

    def wmean_var(self, x: F64, w: int, *, center: bool) -> tuple[F64, F64]:
        mean, var = self._sums("meanvar", [x], w, center)
        return mean, var

    def wslope(self, y: F64, w: int) -> tuple[F64, F64]:
        slope, r2 = self._sums("slope", [y], w, True)
        return slope, r2

    def wmax(self, x: F64, w: int) -> F64:
        t = x.shape[0]
        pv = _slabs(x, w)
        qv = pv.copy()
        for i in range(1, w):
            np.maximum(pv[i - 1], pv[i], out=pv[i])
        for i in range(w - 2, -1, -1):
            np.maximum(qv[i], qv[i + 1], out=qv[i])
        np.maximum(qv[1:, :-1], pv[:-1, 1:], out=qv[:-1, 1:])
        qv[:-1, 0] = _NAN
        qv[w - 1] = pv[w - 1]
        return _unslab(qv, t)

    def wsince_max(self, x: F64, w: int) -> F64:
        t = x.shape[0]
        xv = _slabs(x, w)
        pv, qv = xv.copy(), xv.copy()
        pi, qi = np.zeros(xv.shape), np.full(xv.shape, float(w - 1))
        for i in range(1, w):
            ge = xv[i] >= pv[i - 1]
            np.maximum(pv[i - 1], xv[i], out=pv[i])
            pi[i] = pi[i - 1]
            np.copyto(pi[i], float(i), where=ge)
        for i in range(w - 2, -1, -1):
            gt = xv[i] > qv[i + 1]
            np.maximum(xv[i], qv[i + 1], out=qv[i])
            qi[i] = qi[i + 1]
            np.copyto(qi[i], float(i), where=gt)
        # the later part (the prefix) wins ties: bars since the most recent max
        since = np.empty(xv.shape)
        off = np.arange(w - 1, dtype=np.float64)[:, None, None]
        take_p = pv[:-1, 1:] >= qv[1:, :-1]
        since[:-1, 1:] = np.where(take_p, off - pi[:-1, 1:], (w + off) - qi[1:, :-1])
        since[:-1, 0] = _NAN
        since[w - 1] = (w - 1) - pi[w - 1]
        return _unslab(since, t)

    def wmad(self, x: F64, center: F64, w: int) -> F64:
        acc = np.abs(x - center)
        for j in range(1, w):
            d = x[:-j] - center[j:]
            np.abs(d, out=d)
            acc[j:] += d
        acc[: w - 1] = _NAN
        out: F64 = acc / w
        return out

    # -- calendar ------------------------------------------------------------
    def _day_runs(self) -> _Runs:
        if self._days is None:
            self._days = _Runs(self.panel.ts // _DAY_MS, self.panel.valid)
        return self._days

    def day_cumsum(self, x: F64) -> F64:
        runs = self._day_runs()
        return runs.to_panel(runs.scan_sum(x))

    def prev_day_max(self, x: F64) -> F64:
        runs = self._day_runs()
        prev = runs.of_previous_run(runs.grid(x, -np.inf).max(axis=0))
        prev_day = runs.of_previous_run(runs.key)
        return runs.to_panel(np.where(prev_day == runs.key_at - 1, prev, _NAN))

    # -- cross-section and higher timeframes ------------------------------------
    def ref(self, x: F64, symbol: str) -> F64:
        call = self._ref_calls
        self._ref_calls += 1
        col = self._refs.get(symbol)
        cap = self._captured
        if col is not None:
            n = int(self.panel.lengths[col])
            ref_ts, ref_x = self.panel.ts[:n, col], x[:n, col]
            if cap is not None:
                cap.series[(call, symbol)] = (ref_ts, ref_x.copy())
        elif cap is not None and (call, symbol) in cap.series:
            ref_ts, ref_x = cap.series[(call, symbol)]
        else:
            return np.full(x.shape, _NAN)
        rows = self._ref_rows.get(symbol)
        if rows is None:
            rows = self._ref_rows[symbol] = _match_times(ref_ts, self.panel.ts, self.tf.ms)
        return np.where(rows >= 0, ref_x[np.maximum(rows, 0)], _NAN)

    def htf(self, tf: str, fn: HtfFn) -> dict[str, F64]:
        target = parse(tf)
        if not self.tf.divides(target):
            raise ValueError(f"cannot build {target} bars from {self.tf}")
        panel = self.panel
        valid = panel.valid
        period = np.where(valid, align(panel.ts, target), -1)
        runs = _Runs(period, valid)
        sub = _htf_panel(panel, runs)
        with np.errstate(all="ignore"):
            out = fn(OfflineContext(sub, target))
        # the last closed period: this one if this bar ends it, else the one before
        closed = runs.at_bars(panel.ts) + self.tf.ms == runs.key_at + target.ms
        shift = np.where(closed, 0, 1)
        ok = runs.rid[runs.gid] >= shift
        g = np.where(ok, runs.gid - shift, 0)
        s = panel.shape[1]
        sentinel = sub.shape[0] * s
        at = np.where(ok, runs.rid[g] * s + runs.col[g], sentinel)  # into the sub-panel
        result: dict[str, F64] = {}
        for name, v in out.items():
            ext = np.empty(sentinel + 1)
            ext[:-1] = np.broadcast_to(np.asarray(v, np.float64), sub.shape).ravel()
            ext[-1] = _NAN
            result[name] = runs.to_panel(ext.take(at))
        return result


def _match_times(ref_ts: I64, ts: I64, step: int) -> Any:
    """Row of ``ref_ts`` holding each ``ts`` (-1 if none), by a dense lookup on the bar grid."""
    if not len(ref_ts):
        return np.full(ts.shape, -1, dtype=np.int64)
    t0 = int(ref_ts[0])
    span = (int(ref_ts[-1]) - t0) // step + 1
    if span > 8 * len(ref_ts) + 1_000_000:  # sparse reference: binary search instead
        idx = np.minimum(np.searchsorted(ref_ts, ts), len(ref_ts) - 1)
        return np.where((ts >= 0) & (ref_ts[idx] == ts), idx, -1)
    lut = np.full(span, -1, dtype=np.int64)
    on_grid = (ref_ts - t0) % step == 0
    lut[((ref_ts - t0) // step)[on_grid]] = np.flatnonzero(on_grid)
    k = (ts - t0) // step
    ok = (ts >= t0) & (k < span) & ((ts - t0) % step == 0)
    return np.where(ok, lut[np.where(ok, k, 0)], -1)


def _slabs(x: F64, w: int) -> F64:
    """``(T, S)`` as ``(w, blocks, S)``, NaN-padded: slab ``i`` holds every block's bar ``i``.

    A block scan step is then one contiguous array op; on a ``(blocks, w, S)``
    view numpy would loop over ``blocks`` rows of ``S`` (and copy, fearing overlap).
    """
    t, s = x.shape
    nb = max(1, -(-t // w))
    full = t // w
    out = np.empty((w, nb, s))
    if full:
        out[:, :full] = x[: full * w].reshape(full, w, s).transpose(1, 0, 2)
    if full < nb:
        out[:, full] = _NAN
        out[: t - full * w, full] = x[full * w :]
    return out


def _unslab(y: Any, t: int) -> F64:
    """The inverse of :func:`_slabs`, trimmed to ``t`` rows."""
    w, nb, s = y.shape
    out = np.empty((nb * w, s))
    out.reshape(nb, w, s)[...] = y.transpose(1, 0, 2)
    return out[:t]


def _htf_panel(panel: Panel, runs: _Runs) -> Panel:
    """The higher-timeframe bars of each column, one row per period it has bars in."""
    ts = runs.to_rows(runs.key.astype(np.float64))
    exists = ~np.isnan(ts)
    ts_int = np.where(exists, ts, -1).astype(np.int64)

    def load(name: str) -> F64:
        x = panel.field(name)
        if name == "open":
            return runs.to_rows(np.ravel(x).take(runs.first))
        if name == "close":
            return runs.to_rows(np.ravel(x).take(runs.last))
        if name == "high":
            return runs.to_rows(runs.grid(x, -np.inf).max(axis=0))
        if name == "low":
            return runs.to_rows(runs.grid(x, np.inf).min(axis=0))
        return runs.to_rows(runs.scan_sum(x)[_last_in_runs(runs)])  # volume, in bar order

    rows = np.full(ts_int.shape, -1, dtype=np.int64)  # built bars have no source row
    return Panel(panel.symbols, exists.sum(axis=0).astype(np.int64), ts_int, load, rows)


def _last_in_runs(runs: _Runs) -> Any:
    """Positions (run order) of each run's last bar."""
    return np.r_[np.flatnonzero(np.diff(runs.gid)), len(runs.gid) - 1]


# -- engine ------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class OfflineFeatures:
    """Feature rows of many symbols with their ``(symbol, ts)`` index.

    ``values`` is ``(rows, features)`` float64 in schema order, Fortran-ordered
    (one contiguous column per feature: the layout training and polars want).
    Rows come chunk by chunk of symbols, each chunk in bar order (a symbol's
    k-th bar, then its (k+1)-th...): use ``code``/``ts``, or ``source_rows[i]``
    (the input bar of row ``i``), never the position. :meth:`sorted` gives
    ``(symbol, ts)`` order.
    """

    symbols: tuple[str, ...]
    code: npt.NDArray[np.int32]
    ts: I64
    values: F64
    names: tuple[str, ...]
    schema_version: str
    source_rows: npt.NDArray[np.int64] = field(repr=False)

    def __len__(self) -> int:
        return len(self.ts)

    def column(self, name: str) -> F64:
        col: F64 = self.values[:, self.names.index(name)]
        return col

    def sorted(self) -> OfflineFeatures:
        """The same rows in ``(symbol, ts)`` order (a copy)."""
        order = np.lexsort((self.ts, self.code))
        return OfflineFeatures(
            self.symbols,
            self.code[order],
            self.ts[order],
            np.asfortranarray(self.values[order]),
            self.names,
            self.schema_version,
            self.source_rows[order],
        )

    def to_polars(self) -> pl.DataFrame:
        """``symbol``, ``ts`` (datetime[ms, UTC]) and one column per feature."""
        sym = pl.Series("symbol", np.asarray(self.symbols, dtype=str)[self.code])
        ts = pl.Series("ts", self.ts).cast(pl.Datetime("ms", "UTC"))
        cols = [pl.Series(n, self.values[:, j]) for j, n in enumerate(self.names)]
        return pl.DataFrame([sym, ts, *cols])


@dataclass
class _Captured:
    """Reference symbols' inputs to each ``ref`` call, captured in the first chunk.

    Later chunks look them up by ``(call number, symbol)`` instead of
    recomputing BTC and ETH beside every chunk of other symbols.
    """

    series: dict[tuple[int, str], tuple[I64, F64]]


def _run(
    layout: _Layout,
    fn: Callable[[Any], dict[str, Any]],
    tf: Timeframe,
    refs: tuple[str, ...],
    chunk_cells: int,
    threads: int,
) -> Iterator[tuple[list[int], Panel, dict[str, Any]]]:
    """``fn`` over column chunks: the reference symbols first, then the rest in parallel."""
    symbols, counts = layout.bars.symbols, layout.counts
    ref_codes = [symbols.index(r) for r in refs if r in symbols]
    ref_codes = [c for c in ref_codes if counts[c]]
    per = max(1, chunk_cells // max(int(counts.max(initial=0)), 1))
    rest = [c for c in np.flatnonzero(counts).tolist() if c not in ref_codes]
    rest.sort(key=lambda c: -int(counts[c]))  # similar lengths together: little padding
    first = ref_codes + rest[: max(0, per - len(ref_codes))]
    rest = rest[len(first) - len(ref_codes) :]
    captured = _Captured({})

    def one(codes: list[int], refs_here: dict[str, int]) -> tuple[list[int], Panel, Any]:
        panel = layout.panel(codes)
        ctx = OfflineContext(panel, tf, refs_here, captured)
        with np.errstate(all="ignore"):
            return codes, panel, fn(ctx)

    if first:
        yield one(first, {symbols[c]: i for i, c in enumerate(ref_codes)})
    chunks = [rest[a : a + per] for a in range(0, len(rest), per)]
    if threads > 1 and len(chunks) > 1:
        # at most threads + 1 chunks in flight: a chunk's outputs are ~0.4 GB
        with ThreadPoolExecutor(threads) as pool:
            pending: deque[Future[tuple[list[int], Panel, Any]]] = deque()
            for cs in chunks:
                pending.append(pool.submit(one, cs, {}))
                if len(pending) > threads:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
    else:
        for cs in chunks:
            yield one(cs, {})


def evaluate(
    bars: Bars,
    fn: Callable[[Any], dict[str, Any]],
    *,
    tf: str | Timeframe = BASE,
    refs: Iterable[str] = (),
    chunk_cells: int = DEFAULT_CHUNK_CELLS,
) -> dict[str, F64]:
    """``fn`` (any definition over :class:`Prims`) on whole histories, one value per INPUT row.

    The building block of :func:`compute_offline`; tests use it to check an
    indicator before normalisation against TA-Lib.
    """
    layout = _Layout(bars)
    out: dict[str, F64] = {}
    for _, panel, values in _run(layout, fn, parse(tf), tuple(refs), chunk_cells, 1):
        take = panel.valid
        dest = panel.rows[take]
        for name, v in values.items():
            arr = np.broadcast_to(np.asarray(v, dtype=np.float64), panel.shape)
            out.setdefault(name, np.full(len(bars), _NAN))[dest] = arr[take]
    return out


def compute_offline(
    bars: Bars,
    schema: FeatureSchema = SCHEMA,
    *,
    tf: str | Timeframe = BASE,
    chunk_cells: int = DEFAULT_CHUNK_CELLS,
    threads: int = 2,
) -> OfflineFeatures:
    """Every feature of ``schema`` for every bar of ``bars``, with a ``(symbol, ts)`` index.

    Each value uses only its own symbol's bars up to and including that bar
    (and the reference symbols' bars at the same time): the look-ahead test
    checks that cutting the history at any time changes no earlier value.
    Warm-up rows and missing inputs are NaN; no value is infinite. Rows come
    in the engine's order (see :class:`OfflineFeatures`); ``.sorted()`` for
    ``(symbol, ts)``. ``threads`` chunks of symbols run at once (numpy releases
    the GIL inside its loops); ``chunk_cells`` bounds a chunk's bars.
    """
    layout = _Layout(bars)
    names = schema.names
    n = len(bars)
    values = np.empty((len(names), n))  # every row is written by exactly one chunk
    values.fill(_NAN)  # fault the pages in now, in one sweep: far cheaper than chunk by chunk
    code = np.empty(n, dtype=np.int32)
    ts = np.empty(n, dtype=np.int64)
    source = np.empty(n, dtype=np.int64)
    warm = schema.warmups.tolist()
    at = 0
    run = _run(layout, schema.define, parse(tf), schema.references, chunk_cells, threads)
    for codes, panel, out in run:
        valid = panel.valid
        k = int(panel.lengths.sum())
        cells = None if k == valid.size else np.flatnonzero(valid)
        before = np.concatenate([[0], np.cumsum(valid.sum(axis=1))])  # cells above each row

        def flat(a: Any, cells: Any = cells) -> Any:
            a = np.ravel(a)
            return a if cells is None else a[cells]

        code[at : at + k] = flat(np.broadcast_to(np.asarray(codes, np.int32), valid.shape))
        ts[at : at + k] = flat(panel.ts)
        source[at : at + k] = flat(panel.rows)
        for j, name in enumerate(names):
            dest = values[j, at : at + k]
            dest[...] = flat(np.broadcast_to(np.asarray(out[name], np.float64), valid.shape))
            inf = np.isinf(dest)
            if inf.any():
                dest[inf] = _NAN
            dest[: before[min(warm[j], len(before) - 1)]] = _NAN
        at += k
    return OfflineFeatures(bars.symbols, code, ts, values.T, names, schema.version, source)
