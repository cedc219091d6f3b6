"""Builders for the execution unit tests: a market decision and the bars after it."""

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
    """An approved market order (BTC/USDT long, stop 61,625, take-profit 63,470); a new id."""
    fields = {"entry_type": "market", "expires_at": BAR_TIME + 100 * BAR} | intent
    return risk_approved(confirm=confirm(), intent=order_intent(**fields))


def bars(k: int, ohlc: tuple[float, float, float, float] = (62_250.0, 62_300.0, 62_200.0, 62_260.0)
         ) -> BarBatch:
    """The BTC/USDT bar ``k`` bars after ``BAR_TIME`` (quiet by default: no stop, no target)."""
    return BarBatch(tf="5m", bar_time=BAR_TIME + k * BAR, symbols=("BTC/USDT",),
                    values=np.array([[*ohlc, 1.0]]), producer="ingest")
