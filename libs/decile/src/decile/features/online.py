"""Online engine: one cross-section in, one feature row per symbol out, state for all symbols.

:meth:`OnlineEngine.update` runs the same :func:`~decile.features.definitions.define`
as the offline engine, on ``(m,)`` arrays (the symbols of the cycle), so a
cycle costs one numpy call per step of the definition whatever the number of
symbols: O(symbols x features), no per-symbol Python loop. Each primitive call
of the definition owns a state object (its position in the call sequence is
its key), holding one row per symbol ever seen:

* a symbol missing from a cycle gets no row and its state is not touched; its
  next bar continues its own sequence (the offline engine does the same), so a
  gap is treated identically by both engines;
* a new symbol gets a fresh row (capacity doubles; nothing is re-laid out);
* the state only ever holds bars already given: the engine cannot look ahead,
  and refuses a cycle that is not newer than the last.

State is plain numpy arrays: :meth:`snapshot` writes them (with the schema
version) to bytes and :meth:`OnlineEngine.restore` reads them back; a
service without a snapshot rebuilds by :meth:`replay` of recent bars.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from functools import partial
from typing import Any, ClassVar, Final, TypeVar

import numpy as np
import numpy.typing as npt

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
from decile.market.loaders import iter_cycles
from decile.market.timeframes import BASE, Timeframe, align, parse

__all__ = ["OnlineEngine"]

Rows = slice | npt.NDArray[np.intp]
_S = TypeVar("_S", bound="_State")
_NAN: Final = np.nan
_DAY_MS: Final = 86_400_000


# -- the per-cycle context -------------------------------------------------------------


class _Cycle:
    """:class:`~decile.features.primitives.Prims` over one cycle's rows.

    ``rows`` are the state rows of the cycle's symbols (a slice when they are
    all rows in order, the usual case), ``p`` each symbol's bar count so far.
    """

    def __init__(
        self,
        states: list[_State],
        cap: int,
        rows: Rows,
        p: I64,
        fields: tuple[F64, F64, F64, F64, F64],
        ts: I64,
        tf: Timeframe,
        refs: dict[str, int] | None = None,
    ) -> None:
        self.states = states
        self.cap = cap
        self.rows = rows
        self.p = p
        self.m = len(p)
        self.ridx: npt.NDArray[np.intp] = (
            np.arange(rows.start or 0, rows.stop, dtype=np.intp)
            if isinstance(rows, slice)
            else rows
        )
        self.pmin = int(p.min()) if self.m else 0
        self.p0: int | None = int(p[0]) if self.m and self.pmin == p.max() else None
        self.open, self.high, self.low, self.close, self.volume = fields
        self.ts = ts
        self.tf = tf
        self.close_ts: I64 = ts + tf.ms
        self._refs = refs or {}
        self._i = 0
        self._mods: dict[int, I64] = {}

    def mod(self, w: int) -> I64:
        """``p % w``, computed once per window length per cycle."""
        off = self._mods.get(w)
        if off is None:
            off = self._mods[w] = self.p % w
        return off

    def _take(self, cls: type[_S], key: tuple[Any, ...], *args: Any) -> _S:
        i = self._i
        self._i += 1
        if i == len(self.states):
            self.states.append(cls(self.cap, *args))  # type: ignore[call-arg]
        st = self.states[i]
        if st.key != key:
            raise RuntimeError(f"primitive call {i} changed from {st.key} to {key}")
        if not isinstance(st, cls):
            raise RuntimeError(f"primitive call {i} is a {type(st).__name__}, not {cls.__name__}")
        return st

    # -- Prims --------------------------------------------------------------
    def lag(self, x: F64, k: int) -> F64:
        return self._take(_Lag, ("lag", k), k).step(self, x)

    def ema(
        self,
        x: F64,
        alpha: float,
        *,
        start: int = 0,
        seed: int = 1,
        seed_div: float | None = None,
    ) -> F64:
        key = ("ema", alpha, start, seed, seed_div)
        return self._take(_Ema, key, alpha, start, seed, seed_div).step(self, x)

    def wsum(self, x: F64, w: int) -> F64:
        out: F64 = self._take(_Window, ("sum", w, False), "sum", w, False).step(self, x)
        return out

    def wmean_var(self, x: F64, w: int, *, center: bool) -> tuple[F64, F64]:
        st = self._take(_Window, ("meanvar", w, center), "meanvar", w, center)
        mean, var = st.step(self, x)
        return mean, var

    def wslope(self, y: F64, w: int) -> tuple[F64, F64]:
        slope, r2 = self._take(_Window, ("slope", w, True), "slope", w, True).step(self, y)
        return slope, r2

    def wmax(self, x: F64, w: int) -> F64:
        return self._take(_Max, ("wmax", w), w).step(self, x)

    def wsince_max(self, x: F64, w: int) -> F64:
        return self._take(_SinceMax, ("wsince_max", w), w).step(self, x)

    def wmad(self, x: F64, center: F64, w: int) -> F64:
        return self._take(_Mad, ("wmad", w), w).step(self, x, center)

    def cumsum(self, x: F64) -> F64:
        return self._take(_Cumsum, ("cumsum",)).step(self, x)

    def day_cumsum(self, x: F64) -> F64:
        return self._take(_DayCumsum, ("day_cumsum",)).step(self, x)

    def prev_day_max(self, x: F64) -> F64:
        return self._take(_PrevDayMax, ("prev_day_max",)).step(self, x)

    def ref(self, x: F64, symbol: str) -> F64:
        at = self._refs.get(symbol, -1)
        return np.full(self.m, x[at] if at >= 0 else _NAN)

    def htf(self, tf: str, fn: HtfFn) -> dict[str, F64]:
        target = parse(tf)
        st = self._take(_Htf, ("htf", target.value, _fn_id(fn)), self.tf, target, fn)
        return st.step(self)


def _fn_id(fn: Any) -> str:
    """A name for a sub-definition that is the same in every process (no addresses)."""
    if isinstance(fn, partial):
        args = ", ".join([*map(repr, fn.args), *(f"{k}={v!r}" for k, v in fn.keywords.items())])
        return f"{_fn_id(fn.func)}({args})"
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


# -- states ------------------------------------------------------------------------------


class _State:
    """One primitive call's memory: arrays whose LAST axis is the symbol row.

    Symbol-last keeps a cycle's reads and writes contiguous (``buf[j, rows]``)
    when every symbol is at the same position, the usual case.
    """

    ARRAYS: ClassVar[tuple[str, ...]] = ()
    key: tuple[Any, ...]

    def grow(self, cap: int) -> None:
        for name in self.ARRAYS:
            old = getattr(self, name)
            n = old.shape[-1]
            new = np.empty((*old.shape[:-1], cap), dtype=old.dtype)
            new[..., :n] = old
            new[..., n:] = self._fill(name)
            setattr(self, name, new)

    def _fill(self, name: str) -> Any:
        return _NAN

    def arrays(self, n: int) -> dict[str, Any]:
        return {name: getattr(self, name)[..., :n] for name in self.ARRAYS}

    def load(self, arrays: dict[str, Any]) -> None:
        for name in self.ARRAYS:
            cur = getattr(self, name)
            new = arrays[name]
            if new.shape[:-1] != cur.shape[:-1] or new.dtype != cur.dtype:
                raise ValueError(f"snapshot array {name} has shape {new.shape}, {new.dtype}")
            n = new.shape[-1]
            cur[..., :n] = new


class _Lag(_State):
    ARRAYS = ("buf",)

    def __init__(self, cap: int, k: int) -> None:
        self.key = ("lag", k)
        self.k = k
        self.buf = np.full((k, cap), _NAN)  # bar p lands in row p % k; read back at p + k

    def step(self, c: _Cycle, x: F64) -> F64:
        if c.p0 is not None:
            j = c.p0 % self.k
            out: F64 = self.buf[j, c.rows].copy()
            self.buf[j, c.rows] = x
            return out
        at = c.mod(self.k) * self.buf.shape[1] + c.ridx
        flat = self.buf.reshape(-1)
        out = flat.take(at)
        flat.put(at, x)
        return out


class _Ema(_State):
    """Seed sum, then the blocked EMA of :func:`~decile.features.primitives.ema_consts`."""

    ARRAYS = ("y", "loc", "carry", "sloc", "scarry")

    def __init__(
        self, cap: int, alpha: float, start: int, seed: int, seed_div: float | None
    ) -> None:
        self.key = ("ema", alpha, start, seed, seed_div)
        self.alpha = alpha
        self.start = start
        self.seed = seed
        self.div: float = seed if seed_div is None else seed_div
        self.powers, self.super_powers = ema_consts(alpha)
        self.d, self.d_super = self.powers[-1], self.super_powers[-1]
        self.y = np.full(cap, _NAN)  # the running seed sum until the seed bar, then the EMA
        self.loc = np.zeros(cap)  # L: the local recurrence of the current block
        self.carry = np.full(cap, _NAN)  # Y: the value carried into the current block
        self.sloc = np.zeros(cap)  # M: the carries' local recurrence in the super-block
        self.scarry = np.full(cap, _NAN)  # Z: the value carried into the super-block

    def _fill(self, name: str) -> Any:
        return 0.0 if name in ("loc", "sloc") else _NAN

    def _block_end(self, rows: Any, loc: F64, i: Any) -> None:
        """A block just ended: fold its last L into M, and set the next block's carry."""
        if isinstance(i, int):
            m = loc if i == 0 else loc + self.d * self.sloc[rows]
            z = self.scarry[rows]
            if i == EMA_SUPER - 1:
                z = m + self.d_super * z
                self.scarry[rows] = z
                self.carry[rows] = z
            else:
                self.carry[rows] = m + self.super_powers[i] * z
            self.sloc[rows] = m
            return
        m = np.where(i == 0, loc, loc + self.d * self.sloc[rows])
        z = self.scarry[rows]
        last = i == EMA_SUPER - 1
        z_new = m + self.d_super * z
        self.scarry[rows] = np.where(last, z_new, z)
        self.carry[rows] = np.where(
            last, z_new, m + self.super_powers[np.minimum(i, EMA_SUPER - 1)] * z
        )
        self.sloc[rows] = m

    def step(self, c: _Cycle, x: F64) -> F64:
        rows, a = c.rows, self.alpha
        if c.p0 is not None and c.p0 - self.start - self.seed >= 0:  # the usual case
            n = c.p0 - self.start - self.seed
            j0 = n % EMA_BLOCK
            loc = np.zeros(c.m) if j0 == 0 else self.loc[rows]
            loc = loc + a * (x - loc)
            y: F64 = loc + self.powers[j0] * self.carry[rows]
            self.loc[rows] = loc
            if j0 == EMA_BLOCK - 1:
                self._block_end(rows, loc, (n // EMA_BLOCK) % EMA_SUPER)
            self.y[rows] = y
            return y
        k = c.p - self.start  # index among valid inputs
        n_arr = k - self.seed  # index among recurrence bars
        rec = n_arr >= 0
        jb = np.where(rec, n_arr % EMA_BLOCK, 0)
        loc = np.where(jb == 0, 0.0, self.loc[rows])
        loc = loc + a * (x - loc)
        y_rec = loc + self.powers[jb] * self.carry[rows]
        ends = rec & (jb == EMA_BLOCK - 1)
        old_loc = self.loc[rows]
        self.loc[rows] = np.where(rec, loc, old_loc)
        if bool(ends.any()):
            r = c.ridx[ends]
            self._block_end(r, loc[ends], (n_arr[ends] // EMA_BLOCK) % EMA_SUPER)
        if c.pmin - self.start - self.seed >= 0:  # all past the seed, at different offsets
            self.y[rows] = y_rec
            out: F64 = y_rec
            return out
        old = self.y[rows]
        acc = np.where(k == 0, x, old + x)
        seeded = acc / self.div
        at_seed = k == self.seed - 1
        seeding = (k >= 0) & (k < self.seed)
        out = np.where(at_seed, seeded, np.where(rec, y_rec, _NAN))
        self.y[rows] = np.where(at_seed, seeded, np.where(seeding, acc, np.where(rec, y_rec, old)))
        if bool(at_seed.any()):  # the seed is also the first carry
            r = c.ridx[at_seed]
            self.carry[r] = seeded[at_seed]
            self.scarry[r] = seeded[at_seed]
        return out


class _Window(_State):
    """Two-stack block sums (see :mod:`decile.features.primitives`)."""

    ARRAYS = ("pre", "suf", "buf", "a_cur", "a_pre")

    def __init__(self, cap: int, kind: str, w: int, center: bool) -> None:
        self.key = (kind, w, center)
        self.kind, self.w = kind, w
        self.center = center or kind == "slope"
        k = N_TERMS[kind]
        self.pre = np.full((k, cap), _NAN)  # prefix sums of the current block
        self.suf = np.full((k, w, cap), _NAN)  # suffix sums of the previous block
        self.buf = np.full((w, cap), _NAN)  # inputs of the current block
        self.a_cur = np.full(cap, _NAN)  # first input of the current block
        self.a_pre = np.full(cap, _NAN)  # ... of the previous one (the prefix anchor)
        self._j = np.arange(w, dtype=np.float64)[:, None]

    def step(self, c: _Cycle, x: F64) -> Any:
        if c.p0 is not None:
            return self._step_aligned(c, x, c.p0)
        w, rows, ridx, p = self.w, c.rows, c.ridx, c.p
        off = c.mod(w)
        cap = self.buf.shape[1]
        first_block = p < w
        t_pre = (off + np.where(first_block, 0, w)).astype(np.float64)
        anchor: Any = 0.0
        starts = off == 0
        any_start = bool(starts.any())
        if self.center:
            if any_start:
                a_cur = self.a_cur[rows]
                a_pre = np.where(first_block, x, a_cur)  # block 0 anchors on itself
                self.a_pre[rows] = np.where(starts, a_pre, self.a_pre[rows])
                self.a_cur[rows] = np.where(starts, x, a_cur)
            anchor = self.a_pre[rows]
        terms = sum_terms(self.kind, [x], anchor, t_pre)
        full = off == w - 1
        any_full = bool(full.any())
        nxt = np.minimum(off + 1, w - 1) * cap + ridx
        pre = self.pre[:, rows]
        warm = p < w - 1 if c.pmin < w - 1 else None
        sums = []
        for i, term in enumerate(terms):
            new = pre[i] + term
            if any_start:
                new[starts] = term[starts]
            self.pre[i, rows] = new
            total = self.suf[i].reshape(-1).take(nxt) + new
            if any_full:
                total[full] = new[full]
            if warm is not None:
                total[warm] = _NAN
            sums.append(total)
        self.buf.reshape(-1).put(off * cap + ridx, x)
        out = sum_result(self.kind, sums, w, anchor, t_pre)
        if any_full:
            self._close_blocks(ridx[full])
        return out

    def _step_aligned(self, c: _Cycle, x: F64, p0: int) -> Any:
        """Every row at the same position: scalars for offsets, contiguous rows."""
        w, rows = self.w, c.rows
        off = p0 % w
        t_pre = float(off + (0 if p0 < w else w))
        anchor: Any = 0.0
        if self.center:
            if off == 0:
                a_pre = x if p0 < w else self.a_cur[rows].copy()
                self.a_pre[rows] = a_pre
                self.a_cur[rows] = x
            anchor = self.a_pre[rows]
        terms = sum_terms(self.kind, [x], anchor, t_pre)
        sums = []
        for i, term in enumerate(terms):
            new = term if off == 0 else self.pre[i, rows] + term
            self.pre[i, rows] = new
            sums.append(new if off == w - 1 else self.suf[i, off + 1, rows] + new)
        self.buf[off, rows] = x
        if p0 < w - 1:
            sums = [np.full(c.m, _NAN) for _ in sums]
        out = sum_result(self.kind, sums, w, anchor, t_pre)
        if off == w - 1:
            self._close_blocks(rows)
        return out

    def _close_blocks(self, r: Rows) -> None:
        """Suffix sums of the blocks just completed, scanned from their last bar back."""
        vals = self.buf[:, r]  # (w, n)
        anchor = self.a_cur[r][None, :] if self.center else 0.0
        for i, term in enumerate(sum_terms(self.kind, [vals], anchor, self._j)):
            full = np.broadcast_to(term, vals.shape)
            self.suf[i][:, r] = np.cumsum(full[::-1], axis=0)[::-1]


class _Max(_State):
    ARRAYS = ("pv", "qv", "buf")

    def __init__(self, cap: int, w: int) -> None:
        self.key = ("wmax", w)
        self.w = w
        self.pv = np.full(cap, _NAN)  # running max of the current block
        self.qv = np.full((w, cap), _NAN)  # suffix maxima of the previous block
        self.buf = np.full((w, cap), _NAN)

    def step(self, c: _Cycle, x: F64) -> F64:
        w, rows, ridx = self.w, c.rows, c.ridx
        if c.p0 is not None:
            off0 = c.p0 % w
            nv = x.copy() if off0 == 0 else np.maximum(self.pv[rows], x)
            self.pv[rows] = nv
            self.buf[off0, rows] = x
            val: F64 = nv.copy() if off0 == w - 1 else np.maximum(self.qv[off0 + 1, rows], nv)
            if c.p0 < w - 1:
                val[:] = _NAN
            if off0 == w - 1:
                self.qv[:, rows] = np.maximum.accumulate(self.buf[::-1, rows], axis=0)[::-1]
            return val
        off = c.mod(w)
        cap = self.buf.shape[1]
        nv = np.where(off == 0, x, np.maximum(self.pv[rows], x))
        self.pv[rows] = nv
        self.buf.reshape(-1).put(off * cap + ridx, x)
        done = off == w - 1
        qv = self.qv.reshape(-1).take(np.minimum(off + 1, w - 1) * cap + ridx)
        val = np.where(done, nv, np.maximum(qv, nv))
        val = np.where(c.p < w - 1, _NAN, val)
        if bool(done.any()):
            r = ridx[done]
            self.qv[:, r] = np.maximum.accumulate(self.buf[::-1][:, r], axis=0)[::-1]
        return val


class _SinceMax(_State):
    ARRAYS = ("pv", "pi", "qv", "qi", "buf")

    def __init__(self, cap: int, w: int) -> None:
        self.key = ("wsince_max", w)
        self.w = w
        self.pv = np.full(cap, _NAN)  # running max of the current block, and its offset
        self.pi = np.full(cap, _NAN)
        self.qv = np.full((w, cap), _NAN)  # suffix max of the previous block, and offsets
        self.qi = np.full((w, cap), _NAN)
        self.buf = np.full((w, cap), _NAN)
        self._j = np.arange(w, dtype=np.float64)[:, None]

    def step(self, c: _Cycle, x: F64) -> F64:
        w, rows, ridx = self.w, c.rows, c.ridx
        off = c.mod(w)
        cap = self.buf.shape[1]
        offf = off.astype(np.float64)
        pv, pi = self.pv[rows], self.pi[rows]
        start = off == 0
        nv = np.where(start, x, np.maximum(pv, x))
        ni = np.where(start, 0.0, np.where(x >= pv, offf, pi))
        self.pv[rows], self.pi[rows] = nv, ni
        self.buf.reshape(-1).put(off * cap + ridx, x)
        nxt = np.minimum(off + 1, w - 1) * cap + ridx
        qv, qi = self.qv.reshape(-1).take(nxt), self.qi.reshape(-1).take(nxt)
        since = np.where(nv >= qv, offf - ni, (w + offf) - qi)
        done = off == w - 1
        since = np.where(done, (w - 1) - ni, since)
        since = np.where(c.p < w - 1, _NAN, since)
        if bool(done.any()):
            r = ridx[done]
            vals = self.buf[:, r]
            qv_new = np.maximum.accumulate(vals[::-1], axis=0)[::-1]
            later = np.concatenate([qv_new[1:], np.full((1, len(r)), -np.inf)], axis=0)
            rec = np.where(vals > later, self._j, float(w))
            self.qv[:, r] = qv_new
            self.qi[:, r] = np.minimum.accumulate(rec[::-1], axis=0)[::-1]
        return since


class _Mad(_State):
    ARRAYS = ("buf",)

    def __init__(self, cap: int, w: int) -> None:
        self.key = ("wmad", w)
        self.w = w
        self.buf = np.full((w, cap), _NAN)  # bar p in row p % w

    def step(self, c: _Cycle, x: F64, center: F64) -> F64:
        w, rows = self.w, c.rows
        if c.p0 is not None:
            self.buf[c.p0 % w, rows] = x
            acc = np.abs(x - center)
            for lag in range(1, w):
                acc += np.abs(self.buf[(c.p0 - lag) % w, rows] - center)
        else:
            cap = self.buf.shape[1]
            flat = self.buf.reshape(-1)
            flat.put(c.mod(w) * cap + c.ridx, x)
            acc = np.abs(x - center)
            for lag in range(1, w):
                acc += np.abs(flat.take(((c.p - lag) % w) * cap + c.ridx) - center)
        out: F64 = acc / w
        return out


class _Cumsum(_State):
    ARRAYS = ("acc",)

    def __init__(self, cap: int) -> None:
        self.key = ("cumsum",)
        self.acc = np.zeros(cap)

    def _fill(self, name: str) -> Any:
        return 0.0

    def step(self, c: _Cycle, x: F64) -> F64:
        acc = np.where(c.p == 0, x, self.acc[c.rows] + x)
        self.acc[c.rows] = acc
        return acc


class _DayCumsum(_State):
    ARRAYS = ("day", "acc")

    def __init__(self, cap: int) -> None:
        self.key = ("day_cumsum",)
        self.day = np.full(cap, -1, dtype=np.int64)
        self.acc = np.full(cap, _NAN)

    def _fill(self, name: str) -> Any:
        return -1 if name == "day" else _NAN

    def step(self, c: _Cycle, x: F64) -> F64:
        day = c.ts // _DAY_MS
        acc = np.where(self.day[c.rows] == day, self.acc[c.rows] + x, x)
        self.acc[c.rows] = acc
        self.day[c.rows] = day
        return acc


class _PrevDayMax(_State):
    ARRAYS = ("day", "cur", "prev_day", "prev")

    def __init__(self, cap: int) -> None:
        self.key = ("prev_day_max",)
        self.day = np.full(cap, -1, dtype=np.int64)
        self.cur = np.full(cap, _NAN)
        self.prev_day = np.full(cap, -1, dtype=np.int64)
        self.prev = np.full(cap, _NAN)

    def _fill(self, name: str) -> Any:
        return -1 if "day" in name else _NAN

    def step(self, c: _Cycle, x: F64) -> F64:
        rows = c.rows
        day = c.ts // _DAY_MS
        old_day, cur = self.day[rows], self.cur[rows]
        new = old_day != day
        if bool(new.any()):
            self.prev[rows] = np.where(new, cur, self.prev[rows])
            self.prev_day[rows] = np.where(new, old_day, self.prev_day[rows])
        self.cur[rows] = np.where(new, x, np.maximum(cur, x))
        self.day[rows] = day
        return np.where(self.prev_day[rows] == day - 1, self.prev[rows], _NAN)


class _Htf(_State):
    """The forming higher-timeframe bar of every symbol and a sub-engine over closed ones."""

    ARRAYS = ("period", "o", "h", "lo", "c", "v", "pos", "last")

    def __init__(self, cap: int, base: Timeframe, tf: Timeframe, fn: HtfFn) -> None:
        if not base.divides(tf):
            raise ValueError(f"cannot build {tf} bars from {base}")
        self.key = ("htf", tf.value, _fn_id(fn))
        self.base, self.tf, self.fn = base, tf, fn
        self.period = np.full(cap, -1, dtype=np.int64)  # the forming period, -1 if none
        self.o, self.h, self.lo = np.full(cap, _NAN), np.full(cap, _NAN), np.full(cap, _NAN)
        self.c, self.v = np.full(cap, _NAN), np.full(cap, _NAN)
        self.pos = np.zeros(cap, dtype=np.int64)  # closed bars so far
        self.sub: list[_State] = []
        self.names = tuple(self._run(np.empty(0, np.intp), np.empty(0, np.int64), cap))
        self.last = np.full((len(self.names), cap), _NAN)

    def _fill(self, name: str) -> Any:
        return -1 if name == "period" else 0 if name == "pos" else _NAN

    def grow(self, cap: int) -> None:
        super().grow(cap)
        for st in self.sub:
            st.grow(cap)

    def _run(self, r: npt.NDArray[np.intp], period: I64, cap: int) -> dict[str, F64]:
        """Feed the forming bars of rows ``r`` (periods ``period``) to the sub-definition."""
        fields = (self.o[r], self.h[r], self.lo[r], self.c[r], self.v[r])
        ctx = _Cycle(self.sub, cap, r, self.pos[r], fields, period, self.tf)
        with np.errstate(all="ignore"):
            out = self.fn(ctx)
        self.pos[r] += 1
        return out

    def _close(self, r: npt.NDArray[np.intp], period: I64) -> None:
        out = self._run(r, period, len(self.period))
        for j, name in enumerate(self.names):
            self.last[j, r] = out[name]
        self.period[r] = -1

    def step(self, c: _Cycle) -> dict[str, F64]:
        rows, ridx = c.rows, c.ridx
        t = int(c.ts[0]) if c.m else 0
        p = align(t, self.tf)
        per = self.period[rows]
        stale = (per >= 0) & (per != p)  # a period whose last bar never came: it closed
        if bool(stale.any()):
            self._close(ridx[stale], per[stale])
        cont = self.period[rows] == p
        o, h, lo, cl, v = c.open, c.high, c.low, c.close, c.volume
        if bool(cont.all()):
            self.h[rows] = np.maximum(self.h[rows], h)
            self.lo[rows] = np.minimum(self.lo[rows], lo)
            self.v[rows] = self.v[rows] + v
        else:
            self.o[rows] = np.where(cont, self.o[rows], o)
            self.h[rows] = np.where(cont, np.maximum(self.h[rows], h), h)
            self.lo[rows] = np.where(cont, np.minimum(self.lo[rows], lo), lo)
            self.v[rows] = np.where(cont, self.v[rows] + v, v)
        self.c[rows] = cl
        self.period[rows] = p
        if c.m and t + self.base.ms == p + self.tf.ms:  # this cycle ends the period
            self._close(ridx, np.full(c.m, p, dtype=np.int64))
        return {name: self.last[j, rows] for j, name in enumerate(self.names)}


# -- the engine -------------------------------------------------------------------------


class OnlineEngine:
    """Feature rows for one cross-section at a time, state for every symbol seen.

    ``update(cycle)`` returns a ``(len(cycle), len(schema))`` float64 matrix in
    the cycle's row order (or in the order of ``symbols=`` with NaN rows for
    symbols the cycle lacks). Warm-up and missing inputs are NaN, never 0;
    nothing is infinite.
    """

    def __init__(
        self, schema: FeatureSchema = SCHEMA, *, tf: str | Timeframe = BASE, capacity: int = 64
    ) -> None:
        self.schema = schema
        self.tf = parse(tf)
        self._cap = max(1, capacity)
        self._names: list[str] = []
        self._slot: dict[str, int] = {}
        self._pos = np.zeros(self._cap, dtype=np.int64)
        self._states: list[_State] = []
        self._last_ts: int | None = None
        self._lut: tuple[tuple[str, ...], npt.NDArray[np.intp]] | None = None
        self._warm = schema.warmups
        self._max_warm = schema.max_warmup
        self._run(np.empty(0, np.intp), Bars.empty(), np.empty(0, np.int64))  # build the states

    # -- public -----------------------------------------------------------------------
    @property
    def symbols(self) -> tuple[str, ...]:
        """Every symbol seen, in state-row order."""
        return tuple(self._names)

    @property
    def last_ts(self) -> int | None:
        """Open time of the last cycle fed."""
        return self._last_ts

    def bars_seen(self, symbol: str) -> int:
        slot = self._slot.get(symbol)
        return 0 if slot is None else int(self._pos[slot])

    def update(self, cycle: Bars, symbols: Sequence[str] | None = None) -> F64:
        """Fold one cross-section (every bar shares one ts) in; its feature rows.

        Raises ``ValueError`` for a cycle with several times, a repeated
        symbol, or a time not after the previous cycle's: state only moves forward.
        """
        n = len(cycle)
        if n:
            t = int(cycle.ts[0])
            if int(cycle.ts.min()) != t or int(cycle.ts.max()) != t:
                raise ValueError("a cycle holds bars of one ts only")
            if self._last_ts is not None and t <= self._last_ts:
                raise ValueError(f"cycle ts={t} is not after the last cycle ts={self._last_ts}")
        slots = self._slots_of(cycle)
        if (
            n > 1
            and not bool(np.all(cycle.code[1:] > cycle.code[:-1]))
            and len(np.unique(slots)) != n
        ):
            raise ValueError("a cycle holds one bar per symbol; run the quality check first")
        values = self._run(slots, cycle, np.full(n, cycle.ts[0] if n else 0, dtype=np.int64))
        if n:
            self._last_ts = t
        if symbols is None:
            return values
        out = np.full((len(symbols), len(self.schema)), _NAN)
        where = {self._names[s]: i for i, s in enumerate(slots.tolist())}
        for i, name in enumerate(symbols):
            j = where.get(name)
            if j is not None:
                out[i] = values[j]
        return out

    def replay(self, bars: Bars) -> None:
        """Feed a history cycle by cycle, discarding the rows: how a restart rebuilds state."""
        for _, cycle in iter_cycles(bars):
            self.update(cycle)

    def snapshot(self) -> bytes:
        """Every state array and the schema version, as ``.npz`` bytes."""
        n = len(self._names)
        arrays: dict[str, Any] = {"pos": self._pos[:n]}
        keys: list[str] = []
        for i, st in enumerate(self._states):
            keys.append(repr(st.key))
            for name, arr in st.arrays(n).items():
                arrays[f"s{i}.{name}"] = arr
            if isinstance(st, _Htf):
                for j, sub in enumerate(st.sub):
                    keys.append(repr(sub.key))
                    for name, arr in sub.arrays(n).items():
                        arrays[f"s{i}.sub{j}.{name}"] = arr
        meta = {
            "schema": self.schema.version,
            "tf": self.tf.value,
            "symbols": self._names,
            "last_ts": self._last_ts,
            "keys": keys,
        }
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def restore(cls, blob: bytes, schema: FeatureSchema = SCHEMA) -> OnlineEngine:
        """The engine :meth:`snapshot` saved; ``ValueError`` if it was built on another schema.

        A mismatch means the features changed: rebuild by :meth:`replay` instead.
        """
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
        meta = json.loads(data.pop("meta").tobytes().decode())
        if meta["schema"] != schema.version:
            raise ValueError(
                f"snapshot is for feature schema {meta['schema']}, not {schema.version}"
            )
        names: list[str] = meta["symbols"]
        eng = cls(schema, tf=meta["tf"], capacity=max(1, len(names)))
        keys = [repr(st.key) for st in eng._states]
        keys += [repr(s.key) for st in eng._states if isinstance(st, _Htf) for s in st.sub]
        if sorted(keys) != sorted(meta["keys"]):
            raise ValueError("snapshot state layout differs from this definition")
        eng._names = list(names)
        eng._slot = {s: i for i, s in enumerate(names)}
        eng._pos[: len(names)] = data["pos"]
        eng._last_ts = meta["last_ts"]
        for i, st in enumerate(eng._states):
            st.load({n: data[f"s{i}.{n}"] for n in st.ARRAYS})
            if isinstance(st, _Htf):
                for j, sub in enumerate(st.sub):
                    sub.load({n: data[f"s{i}.sub{j}.{n}"] for n in sub.ARRAYS})
        return eng

    # -- internals ----------------------------------------------------------------------
    def _slots_of(self, cycle: Bars) -> npt.NDArray[np.intp]:
        """State rows of the cycle's symbols; a symbol gets a row when its first bar comes."""
        syms = cycle.symbols
        if self._lut is None or (self._lut[0] is not syms and self._lut[0] != syms):
            lut = np.array([self._slot.get(s, -1) for s in syms], dtype=np.intp)
            self._lut = (syms, lut)
        lut = self._lut[1]
        slots: npt.NDArray[np.intp] = lut[cycle.code]
        if len(slots) and int(slots.min()) < 0:
            for code in np.unique(cycle.code[slots < 0]).tolist():
                lut[code] = self._add(syms[code])
            slots = lut[cycle.code]
        return slots

    def _add(self, symbol: str) -> int:
        slot = len(self._names)
        if slot == self._cap:
            self._cap *= 2
            pos = np.zeros(self._cap, dtype=np.int64)
            pos[:slot] = self._pos
            self._pos = pos
            for st in self._states:
                st.grow(self._cap)
        self._names.append(symbol)
        self._slot[symbol] = slot
        return slot

    def _run(self, slots: npt.NDArray[np.intp], cycle: Bars, ts: I64) -> F64:
        m = len(slots)
        fields = (cycle.open, cycle.high, cycle.low, cycle.close, cycle.volume)
        perm: npt.NDArray[np.intp] | None = None
        if m == len(self._names) and m > 1 and not bool(np.all(slots[1:] > slots[:-1])):
            # every symbol, in another order (a listing sorted in between): process in
            # state order, where the state arrays are contiguous, and put rows back after
            perm = np.argsort(slots, kind="stable")
            slots = slots[perm]
            fields = tuple(f[perm] for f in fields)  # type: ignore[assignment]
        in_order = m == len(self._names) and (m < 2 or bool(np.all(slots[1:] > slots[:-1])))
        rows: Rows = slice(0, m) if in_order else slots
        p = self._pos[rows].copy()
        refs: dict[str, int] = {}
        for sym in self.schema.references:
            slot = self._slot.get(sym)
            hit = np.flatnonzero(slots == slot) if slot is not None else np.empty(0, np.intp)
            refs[sym] = int(hit[0]) if len(hit) else -1
        ctx = _Cycle(self._states, self._cap, rows, p, fields, ts, self.tf, refs)
        with np.errstate(all="ignore"):
            out = self.schema.define(ctx)
        values = np.empty((m, len(self.schema)))
        for j, name in enumerate(self.schema.names):
            values[:, j] = out[name]
        values[np.isinf(values)] = _NAN
        if m and int(p.min()) < self._max_warm:
            values[p[:, None] < self._warm[None, :]] = _NAN
        self._pos[rows] += 1
        if perm is not None:
            back = np.empty_like(values)
            back[perm] = values
            return back
        return values
