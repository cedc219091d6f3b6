"""Builders for the execution unit tests: a resting (limit) decision and the bars after it.

A limit order rests until a bar fills it, so the tests can place a bar-driven fill
(and a crash around it) where they want; market orders fill on arrival (tests/unit/paper).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np

from decile.events import BarBatch, RiskDecision
from tests.unit.event_factories import BAR_TIME, confirm, order_intent, risk_approved

BAR = timedelta(minutes=5)
# confirm() decides at BAR_TIME + 15m: the first bar that may fill opens at BAR_TIME + 15m
FIRST_FILL_BAR = 3


def decision(**intent: Any) -> RiskDecision:
    """An approved limit order (BTC/USDT long at 62,240, stop 61,625, take-profit 63,470)
    that the quiet bars below trade through; a new id."""
    fields = {"entry_type": "limit", "expires_at": BAR_TIME + 100 * BAR} | intent
    return risk_approved(confirm=confirm(), intent=order_intent(**fields))


def bars(k: int, ohlc: tuple[float, float, float, float] = (62_250.0, 62_300.0, 62_200.0, 62_260.0)
         ) -> BarBatch:
    """The BTC/USDT bar ``k`` bars after ``BAR_TIME`` (quiet by default: no stop, no target)."""
    return BarBatch(tf="5m", bar_time=BAR_TIME + k * BAR, symbols=("BTC/USDT",),
                    values=np.array([[*ohlc, 1.0]]), producer="ingest")
