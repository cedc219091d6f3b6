"""Every feature, defined once, as numpy over :class:`~decile.features.primitives.Prims`.

Both engines run :func:`define`: the offline one with ``(T, S)`` panels, the
online one with one array entry per symbol of the cycle. Nothing here knows
which; there is no second implementation to drift.

The indicator helpers (:func:`atr`, :func:`rsi`, :func:`macd`...) return the
raw indicator in TA-Lib's units and seeding, before normalisation, so the
TA-Lib test checks exactly what the features are made of. Features then
normalise them: by ATR (distances, MACD), by price (ATR %), or they are
bounded oscillators already. No feature is a price, a volume or a cumulative
level: the scale-invariance test multiplies every price by 1,024 and every
volume by 1/128 and expects bit-identical features.

Choices where the textbook leaves room:

* A flat window (high == low, zero volume...) gives NaN where the ratio is
  undefined, where TA-Lib gives 0; DX of a flat market is 0 (no directional
  difference) because it feeds ADX's recurrence and a NaN would stick.
* The +DM/-DM smoothing is seeded like ATR (SMA of the first 14), not with
  TA-Lib's 13-value sum; the difference decays as (13/14)^n.
* Close-location value (the CVD proxy) of a bar with high == low is 0.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, Final

import numpy as np

from decile.features.primitives import F64, Prims

__all__ = [
    "REFERENCES",
    "adx",
    "aroon",
    "atr",
    "bbands",
    "cci",
    "define",
    "ema",
    "macd",
    "mfi",
    "obv",
    "rsi",
    "sma",
    "stoch",
    "willr",
]

BTC: Final = "BTC/USDT"
ETH: Final = "ETH/USDT"
REFERENCES: Final = (BTC, ETH)
_LN2: Final = math.log(2.0)
_GK: Final = 2.0 * _LN2 - 1.0
_TAU: Final = 2.0 * math.pi


def _nan_where_nan(x: Any, ref: Any) -> Any:
    """``x`` with NaN wherever ``ref`` is NaN (a comparison with NaN is False, not NaN)."""
    return np.where(np.isnan(ref), np.nan, x)


# -- indicators (TA-Lib units and seeding) -------------------------------------


def true_range(p: Prims) -> F64:
    """TA-Lib TRANGE: from the second bar on."""
    c1 = p.lag(p.close, 1)
    out: F64 = np.maximum(p.high, c1) - np.minimum(p.low, c1)
    return out


def atr(p: Prims, n: int = 14) -> F64:
    """Wilder ATR, first value the mean of TR over bars 1..n (TA-Lib ATR)."""
    return p.ema(true_range(p), 1.0 / n, start=1, seed=n)


def ema(p: Prims, x: F64, n: int) -> F64:
    """EMA with ``alpha = 2/(n+1)``, SMA-seeded over the first ``n`` values (TA-Lib EMA)."""
    return p.ema(x, 2.0 / (n + 1), seed=n)


def sma(p: Prims, x: F64, n: int) -> F64:
    """Simple moving average (TA-Lib SMA); a plain window sum is exact enough for a mean."""
    out: F64 = p.wsum(x, n) / n
    return out


def rsi(p: Prims, n: int) -> F64:
    """Wilder RSI in 0..100 (TA-Lib RSI); NaN when the window never moved."""
    c = p.close
    d = c - p.lag(c, 1)
    gain = np.maximum(d, 0.0)  # NaN (the first bar) stays NaN
    loss = np.maximum(-d, 0.0)
    g = p.ema(gain, 1.0 / n, start=1, seed=n)
    lo = p.ema(loss, 1.0 / n, start=1, seed=n)
    out: F64 = 100.0 * g / (g + lo)
    return out


def macd(p: Prims, fast: int = 12, slow: int = 26, signal: int = 9) -> tuple[F64, F64, F64]:
    """MACD line, signal and histogram in price units (TA-Lib MACD after its seeds wash out)."""
    line = ema(p, p.close, fast) - ema(p, p.close, slow)
    sig = p.ema(line, 2.0 / (signal + 1), start=slow - 1, seed=signal)
    return line, sig, line - sig


def stoch(p: Prims, n: int = 14, k: int = 3, d: int = 3) -> tuple[F64, F64]:
    """Slow %K and %D (SMA smoothing), 0..100 (TA-Lib STOCH)."""
    hh = p.wmax(p.high, n)
    ll = -p.wmax(-p.low, n)
    fast_k = 100.0 * (p.close - ll) / (hh - ll)
    slow_k = p.wsum(fast_k, k) / k
    slow_d = p.wsum(slow_k, d) / d
    return slow_k, slow_d


def willr(p: Prims, n: int = 14) -> F64:
    """Williams %R, -100..0 (TA-Lib WILLR)."""
    hh = p.wmax(p.high, n)
    ll = -p.wmax(-p.low, n)
    out: F64 = -100.0 * (hh - p.close) / (hh - ll)
    return out


def typical_price(p: Prims) -> F64:
    out: F64 = (p.high + p.low + p.close) / 3.0
    return out


def cci(p: Prims, n: int = 20) -> F64:
    """Commodity Channel Index (TA-Lib CCI)."""
    tp = typical_price(p)
    mean = sma(p, tp, n)
    out: F64 = (tp - mean) / (0.015 * p.wmad(tp, mean, n))
    return out


def mfi(p: Prims, n: int = 14) -> F64:
    """Money Flow Index, 0..100 (TA-Lib MFI).

    A typical-price change within 1e-14 of the prices is no change (TA-Lib's
    dead zone): two bars with the same typical price can differ by one
    rounding, and its sign must not decide the flow.
    """
    tp = typical_price(p)
    tp1 = p.lag(tp, 1)
    change = tp - tp1
    moved = np.abs(change) > 1e-14 * (np.abs(tp) + np.abs(tp1))
    flow = tp * p.volume
    up = _nan_where_nan(np.where(moved & (change > 0.0), flow, 0.0), tp1)
    down = _nan_where_nan(np.where(moved & (change < 0.0), flow, 0.0), tp1)
    pos = p.wsum(up, n)
    out: F64 = 100.0 * pos / (pos + p.wsum(down, n))
    return out


def adx(p: Prims, n: int = 14) -> tuple[F64, F64, F64]:
    """ADX, +DI, -DI (TA-Lib ADX / PLUS_DI / MINUS_DI after the DM seeds wash out)."""
    up = p.high - p.lag(p.high, 1)
    down = p.lag(p.low, 1) - p.low
    plus_dm = _nan_where_nan(np.where((up > down) & (up > 0.0), up, 0.0), up)
    minus_dm = _nan_where_nan(np.where((down > up) & (down > 0.0), down, 0.0), up)
    tr = atr(p, n)
    sp = p.ema(plus_dm, 1.0 / n, start=1, seed=n)
    sm = p.ema(minus_dm, 1.0 / n, start=1, seed=n)
    total = sp + sm
    dx = np.where(total > 0.0, 100.0 * np.abs(sp - sm) / total, 0.0)
    dx = _nan_where_nan(dx, total)
    return p.ema(dx, 1.0 / n, start=n, seed=n), 100.0 * sp / tr, 100.0 * sm / tr


def bbands(p: Prims, n: int = 20, k: float = 2.0) -> tuple[F64, F64, F64]:
    """Upper, middle, lower Bollinger bands, population std (TA-Lib BBANDS, SMA)."""
    mid, var = p.wmean_var(p.close, n, center=True)
    dev = k * np.sqrt(var)
    return mid + dev, mid, mid - dev


def obv(p: Prims) -> F64:
    """On-balance volume, first value the first bar's volume (TA-Lib OBV)."""
    c = p.close
    c1 = p.lag(c, 1)
    inc = np.where(np.isnan(c1), p.volume, np.sign(c - c1) * p.volume)
    return p.cumsum(inc)


def aroon(p: Prims, n: int = 25) -> tuple[F64, F64]:
    """Aroon up and down over ``n + 1`` bars, ties to the latest (TA-Lib AROON)."""
    since_high = p.wsince_max(p.high, n + 1)
    since_low = p.wsince_max(-p.low, n + 1)
    return 100.0 * (n - since_high) / n, 100.0 * (n - since_low) / n


def roc(p: Prims, x: F64, n: int) -> F64:
    """Rate of change in percent (TA-Lib ROC)."""
    out: F64 = 100.0 * (x / p.lag(x, n) - 1.0)
    return out


# -- higher timeframes ------------------------------------------------------------


def _htf_bias(q: Prims, roc_n: int) -> dict[str, F64]:
    c = q.close
    return {
        "rsi_14": rsi(q, 14),
        "trend_20": 100.0 * np.log(c / ema(q, c, 20)),
        f"roc_{roc_n}": roc(q, c, roc_n),
    }


# -- the feature set ----------------------------------------------------------------


def define(p: Prims) -> dict[str, F64]:
    """Every feature by name; :data:`decile.features.schema.SPECS` fixes their order."""
    o, h, lo, c, v = p.open, p.high, p.low, p.close, p.volume
    f: dict[str, Any] = {}
    c1 = p.lag(c, 1)
    lr = np.log(c / c1)
    tr = true_range(p)
    a14 = atr(p, 14)
    a100 = atr(p, 100)

    # volatility (per-bar figures in percent)
    f["atr_14_pct"] = 100.0 * a14 / c
    f["tr_atr_14"] = tr / a14
    f["atr_ratio_14_100"] = a14 / a100
    lr_moments = {w: p.wmean_var(lr, w, center=False) for w in (12, 48, 288)}
    rv = {w: 100.0 * np.sqrt(var) for w, (_, var) in lr_moments.items()}
    f["rv_12"], f["rv_48"], f["rv_288"] = rv[12], rv[48], rv[288]
    f["rv_ratio_12_288"] = rv[12] / rv[288]
    hl2 = np.log(h / lo) ** 2
    for w in (48, 288):
        f[f"parkinson_{w}"] = 100.0 * np.sqrt(p.wsum(hl2, w) / (w * 4.0 * _LN2))
    gk = 0.5 * hl2 - _GK * np.log(c / o) ** 2
    f["garman_klass_48"] = 100.0 * np.sqrt(p.wsum(gk, 48) / 48.0)
    upper, mid, lower = bbands(p, 20, 2.0)  # mid is the SMA20 of the trend block
    f["bb_width_20"] = 100.0 * (upper - lower) / mid
    f["bb_pctb_20"] = (c - lower) / (upper - lower)

    # momentum
    for n in (7, 14, 28):
        f[f"rsi_{n}"] = rsi(p, n)
    for n in (1, 3, 12, 48, 288):
        f[f"roc_{n}"] = roc(p, c, n)
    f["ret_z_48"] = 100.0 * lr / rv[48]
    line, sig, hist = macd(p)
    f["macd_atr"], f["macd_signal_atr"], f["macd_hist_atr"] = line / a14, sig / a14, hist / a14
    f["stoch_k_14"], f["stoch_d_14"] = stoch(p, 14, 3, 3)
    f["willr_14"] = willr(p, 14)
    f["cci_20"] = cci(p, 20)
    f["mfi_14"] = mfi(p, 14)

    # trend (distances in ATR units)
    e = {n: ema(p, c, n) for n in (20, 50, 200)}
    s = {20: mid, 50: sma(p, c, 50), 200: sma(p, c, 200)}
    for n in (20, 50, 200):
        f[f"dist_ema_{n}_atr"] = (c - e[n]) / a14
    for n in (20, 50, 200):
        f[f"dist_sma_{n}_atr"] = (c - s[n]) / a14
    f["ema_20_50_atr"] = (e[20] - e[50]) / a14
    f["ema_50_200_atr"] = (e[50] - e[200]) / a14
    f["adx_14"], f["plus_di_14"], f["minus_di_14"] = adx(p, 14)
    slope20, _ = p.wslope(c, 20)
    slope50, r2_50 = p.wslope(c, 50)
    f["slope_20_atr"] = slope20 / a14
    f["slope_50_atr"] = slope50 / a14
    f["r2_50"] = r2_50
    f["aroon_up_25"], f["aroon_down_25"] = aroon(p, 25)

    # levels
    for w in (48, 288):
        hh = p.wmax(h, w)
        ll = -p.wmax(-lo, w)
        f[f"dist_high_{w}_atr"] = (c - hh) / a14
        f[f"dist_low_{w}_atr"] = (c - ll) / a14
        f[f"range_pos_{w}"] = (c - ll) / (hh - ll)
    tp = typical_price(p)
    vwap = p.day_cumsum(tp * v) / p.day_cumsum(v)
    f["dist_vwap_atr"] = (c - vwap) / a14
    f["dist_pdh_atr"] = (c - p.prev_day_max(h)) / a14
    f["dist_pdl_atr"] = (c + p.prev_day_max(-lo)) / a14

    # volume and flow
    vol_mean = {}
    for w in (48, 288):
        m, var = p.wmean_var(v, w, center=True)
        vol_mean[w] = m
        f[f"vol_z_{w}"] = (v - m) / np.sqrt(var)
    v20 = p.wsum(v, 20) / 20.0
    f["vol_ratio_20"] = v / v20
    f["vol_ratio_288"] = v / vol_mean[288]
    obv_slope, _ = p.wslope(obv(p), 20)
    f["obv_slope_20"] = obv_slope / v20
    signed = np.sign(c - c1) * v  # NaN on the first bar
    clv = np.where(h > lo, (2.0 * c - h - lo) / (h - lo), 0.0)
    for w in (12, 48):
        vol_w = p.wsum(v, w)
        f[f"sv_ratio_{w}"] = p.wsum(signed, w) / vol_w
        f[f"cvd_{w}"] = p.wsum(clv * v, w) / vol_w

    # cross-pair (reference absent -> NaN); the symbol's own return moments are rv's
    lr12 = np.log(c / p.lag(c, 12))
    lr48 = np.log(c / p.lag(c, 48))
    for ref, tag in ((BTC, "btc"), (ETH, "eth")):
        r1 = p.ref(lr, ref)
        f[f"{tag}_ret_1"] = 100.0 * r1
        r12 = p.ref(lr12, ref)
        f[f"{tag}_ret_12"] = 100.0 * r12
        for w in (48, 288):
            mx, vx = lr_moments[w]
            my, vy = p.wmean_var(r1, w, center=False)
            cov = p.wsum(lr * r1, w) / w - mx * my
            f[f"corr_{tag}_{w}"] = cov / np.sqrt(vx * vy)
            if w == 288:
                f[f"beta_{tag}_{w}"] = cov / vy
        if tag == "btc":
            f["rs_btc_12"] = 100.0 * (lr12 - r12)
        f[f"rs_{tag}_48"] = 100.0 * (lr48 - p.ref(lr48, ref))

    # higher-timeframe bias, as of the last closed 1h / 4h bar
    for tf, roc_n in (("1h", 12), ("4h", 6)):
        for name, value in p.htf(tf, partial(_htf_bias, roc_n=roc_n)).items():
            f[f"h{tf[:-1]}_{name}"] = value

    # calendar, of the bar close time
    minutes = (p.close_ts // 60_000) % 1_440
    hour = _TAU * minutes / 1_440.0
    dow = _TAU * ((p.close_ts // 86_400_000 + 3) % 7) / 7.0  # 1970-01-01 was a Thursday
    f["hour_sin"], f["hour_cos"] = np.sin(hour), np.cos(hour)
    f["dow_sin"], f["dow_cos"] = np.sin(dow), np.cos(dow)
    return f
