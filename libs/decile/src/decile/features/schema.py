"""The feature schema: ordered, versioned, and checked by every consumer.

The order of :data:`SPECS` is the column order of every feature matrix and
``FeatureBatch``; a model is trained on one :attr:`FeatureSchema.version` and
refuses any other. The version is derived, never typed: a short hash of the
ordered ``(name, group, warm-up)`` list, the parameters of every primitive call
the definition makes (traced: periods, windows, seeds, references) and
:data:`CODE_VERSION` (bump it when a formula changes in a way the trace cannot
see, e.g. a constant inside an expression). :data:`SCHEMA_VERSION` is the
same string written out; a unit test pins the two together, so an accidental
change to the feature set fails CI instead of silently skewing a model.

Warm-up is the number of a symbol's own bars before the feature can be
defined, assuming no gaps (for 1h/4h features: the worst UTC alignment); both
engines return NaN before it, and the schema test checks each figure is
exactly where the first value appears on gap-free data aligned to midnight.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from decile.events.base import Rejection, Scalar
from decile.features.primitives import Prims, Trace
from decile.reasons import ReasonCode

__all__ = [
    "CODE_VERSION",
    "SCHEMA",
    "SCHEMA_VERSION",
    "SPECS",
    "FeatureGroup",
    "FeatureSchema",
    "FeatureSpec",
    "derive_version",
]

CODE_VERSION: Final = "f1"
SCHEMA_VERSION: Final = "f1-d8db7f5b612b"


class FeatureGroup(StrEnum):
    VOLATILITY = "volatility"
    MOMENTUM = "momentum"
    TREND = "trend"
    LEVELS = "levels"
    VOLUME = "volume"
    CROSS = "cross"
    HTF = "htf"
    CALENDAR = "calendar"


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """One column: its name, group, what it means (units included) and warm-up in bars."""

    name: str
    group: FeatureGroup
    description: str
    warmup: int


_V, _M, _T = FeatureGroup.VOLATILITY, FeatureGroup.MOMENTUM, FeatureGroup.TREND
_L, _VO, _X = FeatureGroup.LEVELS, FeatureGroup.VOLUME, FeatureGroup.CROSS
_H, _C = FeatureGroup.HTF, FeatureGroup.CALENDAR

SPECS: Final[tuple[FeatureSpec, ...]] = tuple(
    FeatureSpec(n, g, d, w)
    for n, g, d, w in (
        ("atr_14_pct", _V, "Wilder ATR(14) as % of close", 14),
        ("tr_atr_14", _V, "this bar's true range / ATR(14)", 14),
        ("atr_ratio_14_100", _V, "ATR(14) / ATR(100): volatility regime", 100),
        ("rv_12", _V, "std of 5m log returns over 12 bars, %", 12),
        ("rv_48", _V, "std of log returns over 48 bars, %", 48),
        ("rv_288", _V, "std of log returns over 288 bars (1 day), %", 288),
        ("rv_ratio_12_288", _V, "rv_12 / rv_288", 288),
        ("parkinson_48", _V, "Parkinson high-low volatility over 48 bars, % per bar", 47),
        ("parkinson_288", _V, "Parkinson volatility over 288 bars, % per bar", 287),
        ("garman_klass_48", _V, "Garman-Klass OHLC volatility over 48 bars, % per bar", 47),
        ("bb_width_20", _V, "Bollinger(20, 2) width as % of the middle band", 19),
        ("bb_pctb_20", _V, "Bollinger(20, 2) %b: 0 at the lower band, 1 at the upper", 19),
        ("rsi_7", _M, "Wilder RSI(7), 0..100", 7),
        ("rsi_14", _M, "Wilder RSI(14), 0..100", 14),
        ("rsi_28", _M, "Wilder RSI(28), 0..100", 28),
        ("roc_1", _M, "close-to-close change over 1 bar, %", 1),
        ("roc_3", _M, "change over 3 bars, %", 3),
        ("roc_12", _M, "change over 12 bars (1h), %", 12),
        ("roc_48", _M, "change over 48 bars (4h), %", 48),
        ("roc_288", _M, "change over 288 bars (1 day), %", 288),
        ("ret_z_48", _M, "this bar's log return / its 48-bar std", 48),
        ("macd_atr", _M, "MACD(12, 26) line / ATR(14)", 25),
        ("macd_signal_atr", _M, "MACD signal (9) / ATR(14)", 33),
        ("macd_hist_atr", _M, "MACD histogram / ATR(14)", 33),
        ("stoch_k_14", _M, "stochastic slow %K (14, 3), 0..100", 15),
        ("stoch_d_14", _M, "stochastic slow %D (14, 3, 3), 0..100", 17),
        ("willr_14", _M, "Williams %R(14), -100..0", 13),
        ("cci_20", _M, "Commodity Channel Index(20)", 19),
        ("mfi_14", _M, "Money Flow Index(14), 0..100", 14),
        ("dist_ema_20_atr", _T, "(close - EMA20) / ATR(14)", 19),
        ("dist_ema_50_atr", _T, "(close - EMA50) / ATR(14)", 49),
        ("dist_ema_200_atr", _T, "(close - EMA200) / ATR(14)", 199),
        ("dist_sma_20_atr", _T, "(close - SMA20) / ATR(14)", 19),
        ("dist_sma_50_atr", _T, "(close - SMA50) / ATR(14)", 49),
        ("dist_sma_200_atr", _T, "(close - SMA200) / ATR(14)", 199),
        ("ema_20_50_atr", _T, "(EMA20 - EMA50) / ATR(14)", 49),
        ("ema_50_200_atr", _T, "(EMA50 - EMA200) / ATR(14)", 199),
        ("adx_14", _T, "ADX(14), 0..100", 27),
        ("plus_di_14", _T, "+DI(14), 0..100", 14),
        ("minus_di_14", _T, "-DI(14), 0..100", 14),
        ("slope_20_atr", _T, "least-squares slope of close over 20 bars, ATR per bar", 19),
        ("slope_50_atr", _T, "least-squares slope of close over 50 bars, ATR per bar", 49),
        ("r2_50", _T, "R^2 of that 50-bar linear fit, 0..1", 49),
        ("aroon_up_25", _T, "Aroon up(25), 0..100", 25),
        ("aroon_down_25", _T, "Aroon down(25), 0..100", 25),
        ("dist_high_48_atr", _L, "(close - 48-bar high) / ATR(14), <= 0", 47),
        ("dist_low_48_atr", _L, "(close - 48-bar low) / ATR(14), >= 0", 47),
        ("range_pos_48", _L, "position of close in the 48-bar range, 0..1", 47),
        ("dist_high_288_atr", _L, "(close - 288-bar high) / ATR(14)", 287),
        ("dist_low_288_atr", _L, "(close - 288-bar low) / ATR(14)", 287),
        ("range_pos_288", _L, "position of close in the 288-bar range, 0..1", 287),
        ("dist_vwap_atr", _L, "(close - session VWAP, UTC day so far) / ATR(14)", 14),
        ("dist_pdh_atr", _L, "(close - previous UTC day's high) / ATR(14)", 288),
        ("dist_pdl_atr", _L, "(close - previous UTC day's low) / ATR(14)", 288),
        ("vol_z_48", _VO, "volume z-score over 48 bars", 47),
        ("vol_z_288", _VO, "volume z-score over 288 bars", 287),
        ("vol_ratio_20", _VO, "volume / its 20-bar mean", 19),
        ("vol_ratio_288", _VO, "volume / its 288-bar mean", 287),
        ("obv_slope_20", _VO, "20-bar slope of OBV / mean volume (20)", 19),
        ("sv_ratio_12", _VO, "close-to-close signed volume / volume over 12 bars, -1..1", 12),
        ("sv_ratio_48", _VO, "signed volume / volume over 48 bars, -1..1", 48),
        ("cvd_12", _VO, "CVD proxy: volume-weighted close location over 12 bars, -1..1", 11),
        ("cvd_48", _VO, "CVD proxy over 48 bars, -1..1", 47),
        ("btc_ret_1", _X, "BTC/USDT log return of this bar, %", 1),
        ("btc_ret_12", _X, "BTC/USDT log return over 12 bars, %", 12),
        ("eth_ret_1", _X, "ETH/USDT log return of this bar, %", 1),
        ("eth_ret_12", _X, "ETH/USDT log return over 12 bars, %", 12),
        ("corr_btc_48", _X, "correlation of 5m returns with BTC over 48 bars", 48),
        ("corr_btc_288", _X, "correlation with BTC over 288 bars", 288),
        ("beta_btc_288", _X, "beta to BTC over 288 bars", 288),
        ("corr_eth_48", _X, "correlation with ETH over 48 bars", 48),
        ("corr_eth_288", _X, "correlation with ETH over 288 bars", 288),
        ("beta_eth_288", _X, "beta to ETH over 288 bars", 288),
        ("rs_btc_12", _X, "12-bar log return minus BTC's, %", 12),
        ("rs_btc_48", _X, "48-bar log return minus BTC's, %", 48),
        ("rs_eth_48", _X, "48-bar log return minus ETH's, %", 48),
        ("h1_rsi_14", _H, "RSI(14) of closed 1h bars", 179),
        ("h1_trend_20", _H, "log(1h close / EMA20 of 1h closes), %", 239),
        ("h1_roc_12", _H, "change over 12 closed 1h bars, %", 155),
        ("h4_rsi_14", _H, "RSI(14) of closed 4h bars", 719),
        ("h4_trend_20", _H, "log(4h close / EMA20 of 4h closes), %", 959),
        ("h4_roc_6", _H, "change over 6 closed 4h bars, %", 335),
        ("hour_sin", _C, "sin of the bar close's time of day (UTC)", 0),
        ("hour_cos", _C, "cos of the bar close's time of day (UTC)", 0),
        ("dow_sin", _C, "sin of the bar close's day of week (UTC)", 0),
        ("dow_cos", _C, "cos of the bar close's day of week (UTC)", 0),
    )
)

Define = Callable[[Prims], dict[str, Any]]


def trace(define: Define) -> tuple[tuple[Any, ...], tuple[str, ...]]:
    """The definition's primitive calls in order, and the names it returns."""
    t = Trace()
    with np.errstate(all="ignore"):
        out = define(t)  # type: ignore[arg-type]
    return tuple(t.calls), tuple(out)


def derive_version(
    specs: Sequence[FeatureSpec], calls: Sequence[Any], code_version: str = CODE_VERSION
) -> str:
    """``<code_version>-<12 hex>``: changes with the order, a warm-up, or any traced parameter."""
    doc = {
        "code": code_version,
        "features": [[s.name, str(s.group), s.warmup] for s in specs],
        "calls": list(calls),
    }
    digest = hashlib.sha256(json.dumps(doc, default=str).encode()).hexdigest()
    return f"{code_version}-{digest[:12]}"


@dataclass(frozen=True, eq=False)
class FeatureSchema:
    """An ordered feature set bound to its definition, with its derived version.

    Build it with :meth:`build`, which traces the definition and refuses a
    spec table that does not name exactly what the definition computes.
    """

    specs: tuple[FeatureSpec, ...]
    define: Define
    version: str
    calls: tuple[Any, ...]
    names: tuple[str, ...] = field(init=False)
    warmups: npt.NDArray[np.int64] = field(init=False)
    references: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "names", tuple(s.name for s in self.specs))
        warm = np.array([s.warmup for s in self.specs], dtype=np.int64)
        warm.flags.writeable = False
        set_(self, "warmups", warm)
        refs = dict.fromkeys(c[1] for c in self.calls if c[0] == "ref")
        set_(self, "references", tuple(refs))

    @classmethod
    def build(
        cls, specs: Sequence[FeatureSpec], define: Define, code_version: str = CODE_VERSION
    ) -> FeatureSchema:
        specs = tuple(specs)
        calls, produced = trace(define)
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError("feature names must be unique")
        if set(names) != set(produced):
            missing = sorted(set(names) - set(produced))
            extra = sorted(set(produced) - set(names))
            raise ValueError(
                f"spec table and definition disagree: missing {missing}, extra {extra}"
            )
        return cls(specs, define, derive_version(specs, calls, code_version), calls)

    def __len__(self) -> int:
        return len(self.specs)

    @property
    def max_warmup(self) -> int:
        return int(self.warmups.max(initial=0))

    def index(self, name: str) -> int:
        return self.names.index(name)

    def group(self, group: FeatureGroup | str) -> tuple[str, ...]:
        return tuple(s.name for s in self.specs if s.group == group)

    def check(self, version: str, names: Sequence[str] | None = None) -> Rejection | None:
        """None when a batch or model built on ``version`` (and ``names``) fits this schema.

        Every consumer calls this before reading a column: a mismatch is a
        structured rejection (``FEATURE_SCHEMA_MISMATCH``), never a guess.
        """
        if version == self.version and (names is None or tuple(names) == self.names):
            return None
        values: dict[str, Scalar] = {"expected": self.version, "got": version}
        if names is not None and tuple(names) != self.names:
            values["expected_width"] = len(self.names)
            values["got_width"] = len(names)
            first = next(
                (i for i, (a, b) in enumerate(zip(self.names, names, strict=False)) if a != b),
                min(len(self.names), len(names)),
            )
            values["first_difference"] = first
        return Rejection(
            gate="feature_schema", code=ReasonCode.FEATURE_SCHEMA_MISMATCH, values=values
        )


def _build() -> FeatureSchema:
    from decile.features.definitions import define

    return FeatureSchema.build(SPECS, define)


SCHEMA: Final = _build()
"""The feature set every service and the trainer use."""
