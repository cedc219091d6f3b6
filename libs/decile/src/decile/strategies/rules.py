"""Transparent rule-based proposal generators over the feature matrix.

A rule is a pure function of a feature matrix (rows x features, schema order)
returning ``side`` per row: +1 long, -1 short, 0 no proposal. It reads only
the current row, so the same call serves offline (a whole history) and online
(one cross-section, one row per symbol) and gives the same answer for a row
either way. NaN inputs (warm-up) compare False: no proposal.

Every rule names the features it reads; :func:`propose` checks they exist in
``names`` before running, so a schema change fails loudly, not silently.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "STRATEGIES",
    "STRATEGY_IDS",
    "Proposals",
    "Strategy",
    "propose",
]

F64 = npt.NDArray[np.float64]
I8 = npt.NDArray[np.int8]
Cols = Mapping[str, F64]


@dataclass(frozen=True, slots=True)
class Strategy:
    """A rule: stable id (part of the dataset key and the model features), inputs, side fn."""

    id: str
    needs: tuple[str, ...]
    side: Callable[[Cols], I8]
    description: str


def _sides(long: npt.NDArray[np.bool_], short: npt.NDArray[np.bool_]) -> I8:
    out = np.zeros(long.shape, dtype=np.int8)
    out[long & ~short] = 1
    out[short & ~long] = -1
    return out


def _breakout(c: Cols) -> I8:
    trending = (c["adx_14"] > 25.0) & (c["tr_atr_14"] > 1.0)
    long = trending & (c["range_pos_48"] >= 0.98) & (c["plus_di_14"] > c["minus_di_14"])
    short = trending & (c["range_pos_48"] <= 0.02) & (c["minus_di_14"] > c["plus_di_14"])
    return _sides(long, short)


def _bollinger_reversion(c: Cols) -> I8:
    long = (c["bb_pctb_20"] < 0.0) & (c["rsi_14"] < 30.0)
    short = (c["bb_pctb_20"] > 1.0) & (c["rsi_14"] > 70.0)
    return _sides(long, short)


def _trend_pullback(c: Cols) -> I8:
    long = (c["dist_ema_50_atr"] > 0.5) & (c["ema_20_50_atr"] > 0.0) & (c["rsi_7"] < 40.0)
    short = (c["dist_ema_50_atr"] < -0.5) & (c["ema_20_50_atr"] < 0.0) & (c["rsi_7"] > 60.0)
    return _sides(long, short)


def _volume_spike(c: Cols) -> I8:
    spike = (c["vol_z_48"] > 3.0) & (c["tr_atr_14"] > 1.5)
    return _sides(spike & (c["ret_z_48"] > 2.0), spike & (c["ret_z_48"] < -2.0))


STRATEGIES: Final[tuple[Strategy, ...]] = (
    Strategy(
        "breakout_adx",
        ("adx_14", "tr_atr_14", "range_pos_48", "plus_di_14", "minus_di_14"),
        _breakout,
        "close at the top (bottom) 2% of the 48-bar range on a wide bar, ADX(14) > 25, "
        "DI in the breakout direction",
    ),
    Strategy(
        "bb_reversion",
        ("bb_pctb_20", "rsi_14"),
        _bollinger_reversion,
        "long below the lower Bollinger band with RSI(14) < 30; short above the upper with > 70",
    ),
    Strategy(
        "trend_pullback",
        ("dist_ema_50_atr", "ema_20_50_atr", "rsi_7"),
        _trend_pullback,
        "close > 0.5 ATR above EMA50 in an EMA20>EMA50 uptrend with an RSI(7) < 40 dip "
        "(mirror short)",
    ),
    Strategy(
        "volume_spike",
        ("vol_z_48", "tr_atr_14", "ret_z_48"),
        _volume_spike,
        "volume z(48) > 3 on a bar > 1.5 ATR wide, in the bar's direction when |ret z| > 2",
    ),
)
STRATEGY_IDS: Final[tuple[str, ...]] = tuple(s.id for s in STRATEGIES)


@dataclass(frozen=True, slots=True)
class Proposals:
    """Flat proposal table: ``row`` into the input matrix, ``strategy`` code, ``side`` +/-1.

    Ordered by (strategy, row). ``strategy`` indexes ``strategy_ids``.
    """

    row: npt.NDArray[np.int64]
    strategy: npt.NDArray[np.int16]
    side: I8
    strategy_ids: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.row)

    def counts(self) -> dict[str, int]:
        """Proposals per strategy id (zeros included)."""
        n = np.bincount(self.strategy, minlength=len(self.strategy_ids))
        return {sid: int(k) for sid, k in zip(self.strategy_ids, n, strict=True)}


def propose(
    matrix: npt.ArrayLike,
    names: Sequence[str],
    strategies: Sequence[Strategy] = STRATEGIES,
) -> Proposals:
    """Run every rule over ``matrix`` (rows x features, columns named by ``names``).

    Raises ``KeyError`` naming the missing features when a rule's inputs are absent.
    """
    x = np.asarray(matrix, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(names):
        raise ValueError(f"matrix shape {x.shape} does not match {len(names)} names")
    index = {n: i for i, n in enumerate(names)}
    missing = sorted({f for s in strategies for f in s.needs if f not in index})
    if missing:
        raise KeyError(f"features missing for strategies: {missing}")
    rows, codes, sides = [], [], []
    with np.errstate(invalid="ignore"):
        for k, strat in enumerate(strategies):
            cols = {f: x[:, index[f]] for f in strat.needs}
            side = strat.side(cols)
            hit = np.flatnonzero(side)
            rows.append(hit.astype(np.int64))
            codes.append(np.full(len(hit), k, dtype=np.int16))
            sides.append(side[hit])
    return Proposals(
        np.concatenate(rows) if rows else np.empty(0, np.int64),
        np.concatenate(codes) if codes else np.empty(0, np.int16),
        np.concatenate(sides) if sides else np.empty(0, np.int8),
        tuple(s.id for s in strategies),
    )
