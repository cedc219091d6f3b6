"""Builders for the risk unit tests: a clean book and a clean candidate that pass every gate.

Each takes keyword overrides so a test states only what it is about. The numbers
are round so the expected values can be worked by hand in the test.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from decile.risk import BookState, CandidateContext, KillState, Position, RiskConfig

NOW = datetime(2024, 3, 1, 12, 20, tzinfo=UTC)
BAR = timedelta(minutes=5)
CONFIG = RiskConfig()


def ctx(**overrides: Any) -> CandidateContext:
    """BTC/USDT long at 62,250 with a 1.5 ATR stop (615.75) and a 2R target, at market."""
    fields: dict[str, Any] = {
        "symbol": "BTC/USDT",
        "strategy": "breakout",
        "side": "long",
        "tf": "5m",
        "bar_time": NOW - 4 * BAR,
        "entry_price": 62_250.0,
        "atr": 410.5,
        "p_win": 0.57,
        "sl_katr": 1.5,
        "rr_target": 2.0,
        "offset_katr": 0.0,
        "now": NOW,
    }
    return CandidateContext(**(fields | overrides))


def wide(**overrides: Any) -> CandidateContext:
    """A 100.0 coin with a 10.0 stop (2 x ATR 5): 0.5% of 100k risk = 50 units, 5% notional."""
    fields: dict[str, Any] = {
        "symbol": "ALT/USDT",
        "entry_price": 100.0,
        "atr": 5.0,
        "sl_katr": 2.0,
    }
    return ctx(**(fields | overrides))


def book(**overrides: Any) -> BookState:
    """100k equity, flat day, at its peak, no positions, fresh bars, a one-hour-old model."""
    fields: dict[str, Any] = {
        "equity": 100_000.0,
        "start_of_day_equity": 100_000.0,
        "peak_equity": 100_000.0,
        "last_bar_time": {"BTC/USDT": NOW - BAR, "ALT/USDT": NOW - BAR},
        "model_age_s": 3_600.0,
    }
    return BookState(**(fields | overrides))


def position(symbol: str = "ETH/USDT", **overrides: Any) -> Position:
    fields: dict[str, Any] = {
        "symbol": symbol,
        "strategy": "breakout",
        "side": "long",
        "notional": 5_000.0,
        "cluster": symbol,
        "risk_amount": 0.0,
    }
    return Position(**(fields | overrides))


def kill(**overrides: Any) -> KillState:
    return KillState(**overrides)


def correlated_returns(n: int = 200, rho: float = 0.95, seed: int = 7) -> tuple[Any, Any]:
    """Two return series with correlation close to ``rho``."""
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 0.01, n)
    b = rho * a + np.sqrt(1 - rho**2) * rng.normal(0, 0.01, n)
    return a, b
