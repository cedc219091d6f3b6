"""Every indicator TA-Lib also has agrees with TA-Lib on real data after warm-up.

Compared before normalisation (the indicator helpers of ``definitions``, which
the features are built from) and, for features that ARE an indicator, the
feature column itself. Tolerance: |ours - talib| <= 1e-9 x scale, scale = 100
for 0..100 oscillators and ROC, the close price for price-unit indicators, the
running total of |volume| for OBV. Comparison starts after 1,000 bars, long
enough for every seed difference to decay below 1e-20 (TA-Lib seeds MACD's
fast EMA on the slow EMA's window and ADX's DM sums on 13 bars; we seed both
like EMA/ATR). Where a window is degenerate (flat range, no volume) TA-Lib
writes 0 and we write NaN; those bars are checked to be exactly TA-Lib's 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import talib
from features_support import real_bars

from decile.features import SCHEMA, compute_offline, evaluate
from decile.features import definitions as d
from decile.features.primitives import Prims
from decile.market.bars import Bars

WARM = 1_000
TOL = 1e-9


def ours(p: Prims) -> dict[str, Any]:
    upper, mid, lower = d.bbands(p, 20, 2.0)
    line, signal, hist = d.macd(p)
    slow_k, slow_d = d.stoch(p, 14, 3, 3)
    adx, plus_di, minus_di = d.adx(p, 14)
    up, down = d.aroon(p, 25)
    return {
        "ATR": d.atr(p, 14),
        "RSI7": d.rsi(p, 7),
        "RSI14": d.rsi(p, 14),
        "RSI28": d.rsi(p, 28),
        "MACD": line,
        "MACDSIG": signal,
        "MACDHIST": hist,
        "STOCHK": slow_k,
        "STOCHD": slow_d,
        "WILLR": d.willr(p, 14),
        "CCI": d.cci(p, 20),
        "MFI": d.mfi(p, 14),
        "BBU": upper,
        "BBM": mid,
        "BBL": lower,
        "OBV": d.obv(p),
        "AROONU": up,
        "AROOND": down,
        "ADX": adx,
        "PDI": plus_di,
        "MDI": minus_di,
        "ROC12": d.roc(p, p.close, 12),
        "EMA20": d.ema(p, p.close, 20),
        "EMA200": d.ema(p, p.close, 200),
        "SMA50": d.sma(p, p.close, 50),
        "SMA200": d.sma(p, p.close, 200),
    }


def theirs(o: Any, h: Any, lo: Any, c: Any, v: Any) -> dict[str, Any]:
    macd, sig, hist = talib.MACD(c, 12, 26, 9)
    k, dd = talib.STOCH(h, lo, c, 14, 3, 0, 3, 0)
    bbu, bbm, bbl = talib.BBANDS(c, 20, 2.0, 2.0, 0)
    aroon_down, aroon_up = talib.AROON(h, lo, 25)
    return {
        "ATR": talib.ATR(h, lo, c, 14),
        "RSI7": talib.RSI(c, 7),
        "RSI14": talib.RSI(c, 14),
        "RSI28": talib.RSI(c, 28),
        "MACD": macd,
        "MACDSIG": sig,
        "MACDHIST": hist,
        "STOCHK": k,
        "STOCHD": dd,
        "WILLR": talib.WILLR(h, lo, c, 14),
        "CCI": talib.CCI(h, lo, c, 20),
        "MFI": talib.MFI(h, lo, c, v, 14),
        "BBU": bbu,
        "BBM": bbm,
        "BBL": bbl,
        "OBV": talib.OBV(c, v),
        "AROONU": aroon_up,
        "AROOND": aroon_down,
        "ADX": talib.ADX(h, lo, c, 14),
        "PDI": talib.PLUS_DI(h, lo, c, 14),
        "MDI": talib.MINUS_DI(h, lo, c, 14),
        "ROC12": talib.ROC(c, 12),
        "EMA20": talib.EMA(c, 20),
        "EMA200": talib.EMA(c, 200),
        "SMA50": talib.SMA(c, 50),
        "SMA200": talib.SMA(c, 200),
    }


OSCILLATORS = {
    "RSI7",
    "RSI14",
    "RSI28",
    "STOCHK",
    "STOCHD",
    "WILLR",
    "CCI",
    "MFI",
    "AROONU",
    "AROOND",
    "ADX",
    "PDI",
    "MDI",
    "ROC12",
}
ZERO_WHEN_DEGENERATE = {"WILLR", "CCI", "MFI"}  # TA-Lib's 0 for a flat range / no volume


def per_symbol(bars: Bars) -> Callable[[str], tuple[Any, ...]]:
    def get(symbol: str) -> tuple[Any, ...]:
        m = bars.symbol == symbol
        return tuple(
            np.ascontiguousarray(getattr(bars, f)[m])
            for f in ("open", "high", "low", "close", "volume")
        )

    return get


def compare(bars: Bars) -> dict[str, float]:
    """Worst scaled difference per indicator over every symbol; asserts on the way."""
    mine = evaluate(bars, ours, refs=())
    get = per_symbol(bars)
    worst: dict[str, float] = {}
    for symbol in bars.present():
        m = bars.symbol == symbol
        if m.sum() <= WARM + 100:
            continue
        o, h, lo, c, v = get(symbol)
        ref = theirs(o, h, lo, c, v)
        for name, want in ref.items():
            got = mine[name][m][WARM:]
            want = want[WARM:]
            if name in OSCILLATORS:
                scale = np.full(len(want), 100.0)
            elif name == "OBV":
                scale = np.cumsum(np.abs(v))[WARM:]
            else:
                scale = c[WARM:]
            both = np.isfinite(got) & np.isfinite(want)
            err = np.abs(got - want)[both] / scale[both]
            assert both.sum() > 0.9 * len(want), f"{symbol} {name}: too few comparable bars"
            worst[name] = max(worst.get(name, 0.0), float(err.max(initial=0.0)))
            assert worst[name] <= TOL, f"{symbol} {name}: scaled error {worst[name]:.2e}"
            ours_nan = np.isnan(got) & np.isfinite(want)
            if name in ZERO_WHEN_DEGENERATE:
                assert (want[ours_nan] == 0.0).all(), f"{symbol} {name}: NaN where TA-Lib != 0"
            elif name not in {"STOCHK", "STOCHD"}:  # slow %K averages TA-Lib's zeros
                assert not ours_nan.any(), f"{symbol} {name}: NaN where TA-Lib has a value"
    return worst


def test_indicators_agree_with_talib_on_the_bundled_sample(demo: Bars) -> None:
    worst = compare(demo)
    assert set(worst) == set(theirs(*(np.ones(50),) * 5))


def test_indicators_agree_with_talib_on_two_weeks_of_110_real_pairs() -> None:
    bars = real_bars(start="2021-03-01", end="2021-03-15")
    assert len(bars.present()) >= 50
    compare(bars)


@pytest.mark.parametrize(
    ("feature", "reference"),
    [
        ("rsi_14", lambda o, h, lo, c, v: talib.RSI(c, 14)),
        ("atr_14_pct", lambda o, h, lo, c, v: talib.NATR(h, lo, c, 14)),
        ("adx_14", lambda o, h, lo, c, v: talib.ADX(h, lo, c, 14)),
        ("willr_14", lambda o, h, lo, c, v: talib.WILLR(h, lo, c, 14)),
        ("mfi_14", lambda o, h, lo, c, v: talib.MFI(h, lo, c, v, 14)),
        ("aroon_up_25", lambda o, h, lo, c, v: talib.AROON(h, lo, 25)[1]),
        ("roc_12", lambda o, h, lo, c, v: talib.ROC(c, 12)),
        ("macd_atr", lambda o, h, lo, c, v: talib.MACD(c)[0] / talib.ATR(h, lo, c, 14)),
        (
            "dist_ema_200_atr",
            lambda o, h, lo, c, v: (c - talib.EMA(c, 200)) / talib.ATR(h, lo, c, 14),
        ),
        (
            "bb_pctb_20",
            lambda o, h, lo, c, v: (
                (c - talib.BBANDS(c, 20)[2]) / (talib.BBANDS(c, 20)[0] - talib.BBANDS(c, 20)[2])
            ),
        ),
    ],
)
def test_features_that_are_talib_indicators_match_it(
    demo: Bars, feature: str, reference: Callable[..., Any]
) -> None:
    bars = demo.select(["BTC/USDT", "ETH/USDT", "XRP/USDT", "VET/USDT"])
    feats = compute_offline(bars).sorted()
    col = feats.values[:, SCHEMA.index(feature)]
    get = per_symbol(bars)
    for symbol in bars.present():
        got = col[feats.code == bars.symbols.index(symbol)][WARM:]
        want = reference(*get(symbol))[WARM:]
        both = np.isfinite(got) & np.isfinite(want)
        assert both.mean() > 0.95
        np.testing.assert_allclose(got[both], want[both], rtol=1e-7, atol=1e-7, err_msg=symbol)
