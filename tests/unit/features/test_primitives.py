"""The primitives mean what primitives.py says, checked against naive definitions.

Parity only proves the two engines agree; these prove they agree on the right
thing, for what TA-Lib does not cover: window statistics, the UTC-day
primitives and the closed-higher-timeframe rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import talib
from numpy.lib.stride_tricks import sliding_window_view

from decile.features import SCHEMA, compute_offline, evaluate
from decile.features.primitives import Prims
from decile.market.bars import Bars
from decile.market.resample import resample

M5 = 300_000
DAY = 86_400_000


def series_bars(x: np.ndarray, start: int = 1_612_137_600_000) -> Bars:
    """One symbol whose close (and high, volume) is ``x``: a vehicle for a primitive's input."""
    ts = start + np.arange(len(x), dtype=np.int64) * M5
    return Bars.from_arrays("XYZ/USDT", ts, x, x, x, x, x)


def naive(x: np.ndarray, w: int, fn: Any) -> np.ndarray:
    out = np.full(len(x), np.nan)
    out[w - 1 :] = [fn(win) for win in sliding_window_view(x, w)]
    return out


def test_window_statistics_equal_their_textbook_definitions() -> None:
    rng = np.random.default_rng(0)
    x = 100 + np.cumsum(rng.normal(size=700))
    x[np.arange(700) % 97 == 5] = x[np.arange(700) % 97 == 4]  # ties for the argmax

    def prims(p: Prims) -> dict[str, Any]:
        c = p.close
        mean, var = p.wmean_var(c, 20, center=True)
        slope, r2 = p.wslope(c, 50)
        return {
            "sum": p.wsum(c, 12),
            "mean": mean,
            "var": var,
            "slope": slope,
            "r2": r2,
            "max": p.wmax(c, 48),
            "since": p.wsince_max(c, 26),
            "mad": p.wmad(c, mean, 20),
        }

    got = evaluate(series_bars(x), prims)
    t = np.arange(50.0)
    fit = naive(x, 50, lambda win: np.polyfit(t, win, 1)[0])
    r2 = naive(x, 50, lambda win: np.corrcoef(t, win)[0, 1] ** 2)
    np.testing.assert_allclose(got["sum"], naive(x, 12, np.sum), rtol=1e-12)
    np.testing.assert_allclose(got["mean"], naive(x, 20, np.mean), rtol=1e-12)
    np.testing.assert_allclose(got["var"], naive(x, 20, np.var), rtol=1e-9)
    np.testing.assert_allclose(got["slope"], fit, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got["r2"], r2, rtol=1e-9)
    np.testing.assert_array_equal(got["max"], naive(x, 48, np.max))
    latest = naive(x, 26, lambda win: float(np.argmax(win[::-1])))  # bars back to the last max
    np.testing.assert_array_equal(got["since"], latest)
    mad = np.full(len(x), np.nan)
    for i in range(19, len(x)):
        mad[i] = np.mean(np.abs(x[i - 19 : i + 1] - got["mean"][i]))
    np.testing.assert_allclose(got["mad"], mad, rtol=1e-12)


def test_a_nan_leaves_the_window_after_w_bars() -> None:
    x = np.arange(1.0, 101.0)
    x[30] = np.nan
    got = evaluate(series_bars(x), lambda p: {"s": p.wsum(p.close, 10)})["s"]
    assert np.isnan(got[30:40]).all()
    assert np.isfinite(got[40:]).all()
    assert got[40] == np.sum(x[31:41])


def test_a_window_of_zeros_sums_to_exactly_zero_after_large_values() -> None:
    x = np.r_[np.full(50, 1e12), np.zeros(50)]
    got = evaluate(series_bars(x), lambda p: {"s": p.wsum(p.close, 12)})["s"]
    assert (got[61:] == 0.0).all()  # a sliding +x/-x sum would leave ~1e-4 behind


def test_session_vwap_and_previous_day_use_utc_days_of_the_symbols_own_bars(demo: Bars) -> None:
    bars = demo.select(["ETH/USDT"])
    got = evaluate(
        bars,
        lambda p: {
            "pv": p.day_cumsum(p.close * p.volume),
            "v": p.day_cumsum(p.volume),
            "pdh": p.prev_day_max(p.high),
        },
    )
    day = bars.ts // DAY
    for d in np.unique(day)[:5]:
        m = day == d
        np.testing.assert_allclose(got["pv"][m], np.cumsum((bars.close * bars.volume)[m]))
        np.testing.assert_allclose(got["v"][m], np.cumsum(bars.volume[m]))
        prev = day == d - 1
        want = bars.high[prev].max() if prev.any() else np.nan
        np.testing.assert_array_equal(got["pdh"][m], np.full(m.sum(), want))


def test_higher_timeframe_features_use_only_closed_bars(demo: Bars) -> None:
    # Independent check: resample with decile.market.resample, RSI/EMA with TA-Lib, then
    # take, at each 5m bar, the last 1h/4h bar that had closed by the 5m bar's close.
    bars = demo.select(["SOL/USDT"])  # includes the 11 Feb outage: a partial hour
    feats = compute_offline(bars).sorted()
    for tf, name, ref in (
        ("1h", "h1_rsi_14", lambda c: talib.RSI(c, 14)),
        ("4h", "h4_rsi_14", lambda c: talib.RSI(c, 14)),
        ("1h", "h1_trend_20", lambda c: 100 * np.log(c / talib.EMA(c, 20))),
        ("4h", "h4_roc_6", lambda c: talib.ROC(c, 6)),
    ):
        htf = resample(bars, tf, through_ms=int(bars.ts.max()) + M5)
        length = 3_600_000 if tf == "1h" else 14_400_000
        value = ref(htf.close)
        last_closed = np.searchsorted(htf.ts + length, feats.ts + M5, side="right") - 1
        want = np.where(last_closed >= 0, value[np.maximum(last_closed, 0)], np.nan)
        got = feats.values[:, SCHEMA.index(name)]
        warm = np.arange(len(got)) >= SCHEMA.warmups[SCHEMA.index(name)]
        np.testing.assert_allclose(got[warm], want[warm], rtol=1e-9, atol=1e-9, err_msg=name)
