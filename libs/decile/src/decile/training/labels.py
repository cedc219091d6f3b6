"""Trade labels from the bars AFTER a proposal only.

A proposal at bar ``i`` enters at ``close[i]``; ``R = k * ATR(14)[i]`` (ATR
known at the close of ``i``). Bars ``i+1 .. i+H`` decide it:

* ``win`` = 1 when +1R is touched strictly before -1R; a bar touching both
  counts as a loss (intrabar order unknown: assume the worst); neither within
  ``H`` bars = 0 (timeout).
* ``realised_r``: +1 on a win, -1 on a stop, else the close of bar ``i+H``
  against the entry in R; minus round-trip costs ``2 * (fee + slippage)`` bps
  of the entry price, expressed in R.
* ``mae_atr``: worst adverse excursion over the whole horizon, in ATR, >= 0
  (the stop is ignored: this is what the risk model learns a stop from).
* ``best_offset``: among :data:`OFFSETS` (ATR; negative = better price, a
  limit order; positive = worse, a stop order), the one with the highest
  realised R. An offset entry fills at the first bar whose range reaches it;
  in the fill bar only the stop can trigger (conservative); never filled = 0 R.
  Ties go to the offset nearest 0.

Rows whose window leaves the symbol's data (or, with ``bar_ms``, spans a gap)
get no label: ``valid`` is False and :attr:`Labels.dropped` counts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["OFFSETS", "LabelConfig", "Labels", "label_trades"]

F64 = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]
OFFSETS: Final[tuple[float, ...]] = (-0.25, -0.15, 0.0, 0.15, 0.25)


@dataclass(frozen=True, slots=True)
class LabelConfig:
    """Horizon ``H`` bars (default 6), ``R = k * ATR`` (k default 1.0), costs in bps per side.

    Defaults: fee 10 bps and slippage 5 bps per side (Binance spot taker-ish).
    """

    horizon: int = 6
    k_atr: float = 1.0
    fee_bps: float = 10.0
    slippage_bps: float = 5.0
    offsets: tuple[float, ...] = OFFSETS

    def __post_init__(self) -> None:
        if self.horizon < 1:
            raise ValueError("horizon must be >= 1 bar")
        if self.k_atr <= 0:
            raise ValueError("k_atr must be > 0")
        if self.fee_bps < 0 or self.slippage_bps < 0:
            raise ValueError("costs must be >= 0 bps")

    @property
    def cost_fraction(self) -> float:
        """Round-trip cost as a fraction of the entry price."""
        return 2.0 * (self.fee_bps + self.slippage_bps) / 1e4


@dataclass(frozen=True, slots=True)
class Labels:
    """Per-proposal labels; entries where ``valid`` is False are NaN (or 0 for ``win``)."""

    valid: Bool
    win: npt.NDArray[np.int8]
    realised_r: F64
    mae_atr: F64
    best_offset: F64
    best_offset_r: F64

    @property
    def dropped(self) -> int:
        return int((~self.valid).sum())


def _first(hit: Bool) -> npt.NDArray[np.intp]:
    """Index of the first True per row, or the width when there is none."""
    width = hit.shape[1]
    out: npt.NDArray[np.intp] = np.where(hit.any(axis=1), hit.argmax(axis=1), width)
    return out


def _simulate(
    entry: F64,
    fill: npt.NDArray[np.intp],
    filled: Bool,
    hi: F64,
    lo: F64,
    last: F64,
    risk: F64,
    side: F64,
    cost: float,
) -> tuple[Bool, F64]:
    """Win flag and net realised R of trades entered at ``entry`` in window column ``fill``.

    ``fill = -1`` means at the proposal close (before the window); columns
    ``> fill`` can hit either barrier, column ``fill`` only the stop.
    """
    cols = np.arange(hi.shape[1])[None, :]
    after = cols > fill[:, None]
    at = cols == fill[:, None]
    up, dn = entry + risk, entry - risk
    tp_long, sl_long = hi >= up[:, None], lo <= dn[:, None]
    tp_short, sl_short = lo <= dn[:, None], hi >= up[:, None]
    long = side[:, None] > 0
    tp = np.where(long, tp_long, tp_short) & after
    sl = np.where(long, sl_long, sl_short) & (after | at)
    t_tp, t_sl = _first(tp), _first(sl)
    win = (t_tp < t_sl) & filled
    loss = (t_sl <= t_tp) & (t_sl < hi.shape[1]) & filled
    gross = np.where(win, 1.0, np.where(loss, -1.0, side * (last - entry) / risk))
    net = gross - cost * entry / risk
    return win, np.where(filled, net, 0.0)


def label_trades(
    code: npt.ArrayLike,
    ts: npt.ArrayLike,
    high: npt.ArrayLike,
    low: npt.ArrayLike,
    close: npt.ArrayLike,
    atr: npt.ArrayLike,
    rows: npt.ArrayLike,
    side: npt.ArrayLike,
    config: LabelConfig = LabelConfig(),
    bar_ms: int | None = None,
) -> Labels:
    """Label proposals at ``rows`` of bars laid out in ``(symbol, ts)`` order.

    ``code``/``ts``/``high``/``low``/``close``/``atr`` are per bar; ``rows`` and
    ``side`` (+1/-1) per proposal. Vectorised: one ``(proposals, H)`` window.
    """
    c = np.asarray(code)
    t = np.asarray(ts, dtype=np.int64)
    h, lo_, cl = (np.asarray(a, dtype=np.float64) for a in (high, low, close))
    a = np.asarray(atr, dtype=np.float64)
    r = np.asarray(rows, dtype=np.int64)
    s = np.asarray(side, dtype=np.float64)
    n, horizon = len(c), config.horizon
    if len(r) and (r.min() < 0 or r.max() >= n):
        raise IndexError("proposal rows out of range")
    end = r + horizon
    valid = end < n
    endc = np.minimum(end, n - 1)
    valid &= c[endc] == c[r]
    if bar_ms is not None:
        valid &= (t[endc] - t[r]) == horizon * bar_ms
    risk = config.k_atr * a[r]
    valid &= np.isfinite(risk) & (risk > 0) & np.isfinite(cl[r]) & (np.abs(s) == 1)
    vr = r[valid]
    win = np.zeros(len(r), dtype=np.int8)
    nan = np.full(len(r), np.nan)
    realised, mae, best, best_r = nan.copy(), nan.copy(), nan.copy(), nan.copy()
    if len(vr):
        idx = vr[:, None] + np.arange(1, horizon + 1)[None, :]
        hi, lo, last = h[idx], lo_[idx], cl[vr + horizon]
        sv, rv, av, entry = s[valid], risk[valid], a[vr], cl[vr]
        always = np.ones(len(vr), dtype=np.bool_)
        w, net = _simulate(
            entry, np.full(len(vr), -1, np.intp), always, hi, lo, last, rv, sv, config.cost_fraction
        )
        win[valid] = w
        realised[valid] = net
        adverse = np.where(sv > 0, entry - lo.min(axis=1), hi.max(axis=1) - entry)
        mae[valid] = np.maximum(adverse, 0.0) / av
        scores = []
        for off in config.offsets:
            if off == 0.0:
                scores.append(net)
                continue
            px = entry + sv * off * av
            # off < 0: a limit order, filled when price trades back to it;
            # off > 0: a stop order, filled when price runs through it.
            reach = np.where(((sv > 0) == (off < 0))[:, None], lo <= px[:, None], hi >= px[:, None])
            fill = _first(reach)
            filled = fill < horizon
            _, net_o = _simulate(px, fill, filled, hi, lo, last, rv, sv, config.cost_fraction)
            scores.append(net_o)
        m = np.stack(scores, axis=1)
        tie_break = 1e-9 * np.abs(np.asarray(config.offsets))[None, :]
        pick = (m - tie_break).argmax(axis=1)
        best[valid] = np.asarray(config.offsets)[pick]
        best_r[valid] = m[np.arange(len(vr)), pick]
    return Labels(valid, win, realised, mae, best, best_r)
