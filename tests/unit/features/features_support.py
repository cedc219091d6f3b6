"""Helpers for the feature tests (a plain module: ``import features_support``)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from decile.features import SCHEMA, OfflineFeatures, OnlineEngine
from decile.market.bars import Bars
from decile.market.generator import generate
from decile.market.loaders import iter_cycles, read_bars
from decile.testing.probes import SHARED_DATA

BINANCE = SHARED_DATA / "binance-spot-5m-nfi/binance_spot_5m_2020-12_2021-03.parquet"

F64 = npt.NDArray[np.float64]

RTOL = 1e-9
ATOL = 1e-12
"""Parity tolerance: |online - offline| <= RTOL * max(|online|, |offline|) + ATOL.

Features are O(1) (ratios, z-scores, ATR units, 0..100 oscillators), so 1e-12 is
a floor far below any meaningful value. In practice the engines agree to the bit.
"""


def real_bars(**filters: object) -> Bars:
    """A slice of the 110-pair Binance set; the test is skipped when it is not on this machine."""
    if not BINANCE.is_file():
        pytest.skip(f"real data not present at {BINANCE}")
    return read_bars(BINANCE, **filters)  # type: ignore[arg-type]


def synthetic(n_symbols: int = 6, n_bars: int = 1_100, seed: int = 7) -> Bars:
    """Generated bars from midnight UTC, two of them renamed BTC/USDT and ETH/USDT."""
    bars = generate(n_symbols, n_bars, seed=seed)
    names = bars.symbol.copy()
    names[names == bars.symbols[0]] = "BTC/USDT"
    names[names == bars.symbols[1]] = "ETH/USDT"
    return Bars.from_arrays(names, bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume)


def online_rows(bars: Bars, engine: OnlineEngine | None = None) -> OfflineFeatures:
    """The online engine fed ``bars`` cycle by cycle, as an :class:`OfflineFeatures` in
    ``(symbol, ts)`` order so it lines up with ``compute_offline(bars).sorted()``."""
    eng = engine or OnlineEngine()
    codes, times, rows = [], [], []
    for _, cycle in iter_cycles(bars):
        rows.append(eng.update(cycle))
        codes.append(cycle.with_symbols(bars.symbols).code)
        times.append(cycle.ts)
    code, ts = np.concatenate(codes), np.concatenate(times)
    order = np.lexsort((ts, code))
    values = np.vstack(rows)[order]
    return OfflineFeatures(
        bars.symbols, code[order], ts[order], values, SCHEMA.names, SCHEMA.version, order
    )


def mismatches(a: F64, b: F64) -> F64:
    """Per column: how many entries break the parity tolerance (NaN must match NaN)."""
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    with np.errstate(invalid="ignore"):
        close = np.abs(a - b) <= RTOL * np.maximum(np.abs(a), np.abs(b)) + ATOL
    ok = (nan_a & nan_b) | (~nan_a & ~nan_b & close)
    out: F64 = (~ok).sum(axis=0).astype(np.float64)
    return out


def bar_index(feats: OfflineFeatures) -> npt.NDArray[np.int64]:
    """Each row's position in its symbol's own sequence (0 = the symbol's first bar)."""
    order = np.lexsort((feats.ts, feats.code))
    code = feats.code[order]
    first = np.r_[0, np.flatnonzero(code[1:] != code[:-1]) + 1]
    counts = np.diff(np.r_[first, len(code)])
    k = np.arange(len(code)) - np.repeat(first, counts)
    out = np.empty(len(code), dtype=np.int64)
    out[order] = k
    return out
