"""One valid instance of every event type, for unit tests anywhere in the suite.

Each factory takes keyword overrides, so a test states only the field it is
about: ``candidate(entry_price=-1.0)``. Values are plausible, not random, so a
failing assertion prints something a reader recognises. ``FACTORIES`` maps every
class in :data:`decile.events.ALL_EVENTS` to its factory; a new event type
without one fails ``test_every_event_type_has_a_factory``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from decile import ids
from decile.events import (
    BarBatch,
    CandidateSignal,
    ConfirmDecision,
    DeadLetter,
    Event,
    FeatureBatch,
    Fill,
    InferenceCycle,
    KillSwitchChanged,
    ModelActivated,
    ModelRejected,
    Order,
    OrderIntent,
    QuarantinedBar,
    Rejection,
    RetrainRequested,
    RiskDecision,
    TradeClosed,
)
from decile.reasons import ReasonCode

BAR_TIME = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
MODEL_VERSIONS = {"entry": "e-2024.03.01", "risk": "r-2024.02.20"}
FEATURE_NAMES = ("ret_1", "atr_14", "rsi_14")
SHA = "ab" * 32


def bars_matrix() -> np.ndarray:
    """Open, high, low, close, volume for :data:`SYMBOLS`: consistent bars."""
    return np.array(
        [
            [62_000.0, 62_500.0, 61_800.0, 62_250.0, 12.5],
            [3_400.0, 3_420.0, 3_390.0, 3_410.0, 150.0],
            [120.0, 121.5, 119.0, 121.0, 0.0],
        ]
    )


def bar_batch(**overrides: Any) -> BarBatch:
    fields: dict[str, Any] = {
        "tf": "5m",
        "bar_time": BAR_TIME,
        "symbols": SYMBOLS,
        "values": bars_matrix(),
        "shard": 0,
        "expected": 4,
        "missing": ("XRP/USDT",),
        "source": "binance",
        "producer": "ingest",
    }
    return BarBatch(**(fields | overrides))


def quarantined_bar(**overrides: Any) -> QuarantinedBar:
    fields: dict[str, Any] = {
        "code": ReasonCode.HIGH_LOW_INCONSISTENT,
        "symbol": "BTC/USDT",
        "tf": "5m",
        "bar_time": BAR_TIME,
        "source": "binance",
        "values": {"high": 61_000.0, "low": 61_500.0},
        "detail": "high below low",
        "producer": "ingest",
    }
    return QuarantinedBar(**(fields | overrides))


def feature_batch(**overrides: Any) -> FeatureBatch:
    values = np.array(
        [
            [0.0036, 410.5, 61.2],
            [0.0029, 22.1, float("nan")],  # NaN: still warming up
            [-0.0041, 1.9, 38.7],
        ]
    )
    fields: dict[str, Any] = {
        "tf": "5m",
        "bar_time": BAR_TIME,
        "symbols": SYMBOLS,
        "values": values,
        "feature_schema": "fs-v1",
        "feature_names": FEATURE_NAMES,
        "source_id": ids.new_id(),
        "producer": "feature",
    }
    return FeatureBatch(**(fields | overrides))


def candidate(**overrides: Any) -> CandidateSignal:
    fields: dict[str, Any] = {
        "trace_id": TRACE_ID,
        "symbol": "BTC/USDT",
        "tf": "5m",
        "bar_time": BAR_TIME,
        "strategy": "breakout",
        "side": "long",
        "entry_price": 62_250.0,
        "atr": 410.5,
        "p_win": 0.57,
        "sl_katr": 1.5,
        "rr_target": 2.0,
        "offset_katr": 0.1,
        "score": 0.83,
        "rank": 1,
        "cycle_size": 120,
        "cycle_threshold": 0.74,
        "score_floor": 0.6,
        "model_versions": MODEL_VERSIONS,
        "feature_schema": "fs-v1",
        "producer": "inference",
    }
    return CandidateSignal(**(fields | overrides))


def inference_cycle(**overrides: Any) -> InferenceCycle:
    fields: dict[str, Any] = {
        "trace_id": TRACE_ID,
        "tf": "5m",
        "bar_time": BAR_TIME,
        "source_id": ids.new_id(),
        "feature_schema": "fs-v1",
        "model_versions": MODEL_VERSIONS,
        "symbols": 120,
        "incomplete": 3,
        "proposals": 40,
        "kept": 4,
        "cycle_threshold": 0.74,
        "score_floor": 0.6,
        "producer": "inference",
    }
    return InferenceCycle(**(fields | overrides))


def confirm(**overrides: Any) -> ConfirmDecision:
    cand = overrides.pop("candidate", None) or candidate()
    fields: dict[str, Any] = {
        "trace_id": cand.trace_id,
        "candidate": cand,
        "decision": "approve",
        "side": cand.side,
        "p_confirm": 0.64,
        "atr_bucket": 2,
        "window_bars": 3,
        "flow": {"buy_ratio": 0.58, "spread_bps": 1.2},
        "model_version": "c-2024.02.28",
        "decided_at": BAR_TIME + timedelta(minutes=15),
        "fill_price_hint": 62_240.0,
        "producer": "confirm",
    }
    return ConfirmDecision(**(fields | overrides))


def order_intent(**overrides: Any) -> OrderIntent:
    fields: dict[str, Any] = {
        "symbol": "BTC/USDT",
        "side": "long",
        "quantity": 0.05,
        "entry_type": "limit",
        "entry_price": 62_240.0,
        "stop_price": 61_625.0,
        "take_profit": 63_470.0,
        "expires_at": BAR_TIME + timedelta(minutes=30),
        "risk_amount": 30.75,
    }
    return OrderIntent(**(fields | overrides))


def rejection(**overrides: Any) -> Rejection:
    fields: dict[str, Any] = {
        "gate": "daily_loss",
        "code": ReasonCode.DAILY_LOSS_LIMIT,
        "values": {"pnl_today": -512.5, "limit": -500.0},
        "detail": "",
    }
    return Rejection(**(fields | overrides))


def risk_approved(**overrides: Any) -> RiskDecision:
    conf = overrides.pop("confirm", None) or confirm()
    fields: dict[str, Any] = {
        "trace_id": conf.trace_id,
        "confirm": conf,
        "outcome": "approved",
        "intent": order_intent(),
        "checked": ("master_kill", "stale_data", "daily_loss"),
        "snapshot": {"open_positions": 3, "equity": 10_250.0, "halted": False},
        "producer": "risk",
    }
    return RiskDecision(**(fields | overrides))


def risk_rejected(**overrides: Any) -> RiskDecision:
    fields: dict[str, Any] = {"outcome": "rejected", "intent": None, "rejection": rejection()}
    return risk_approved(**(fields | overrides))


def order(**overrides: Any) -> Order:
    fields: dict[str, Any] = {
        "trace_id": TRACE_ID,
        "decision_id": ids.new_id(),
        "symbol": "BTC/USDT",
        "side": "long",
        "entry_type": "limit",
        "quantity": 0.05,
        "price": 62_240.0,
        "stop_price": 61_625.0,
        "take_profit": 63_470.0,
        "status": "accepted",
        "expires_at": BAR_TIME + timedelta(minutes=30),
        "producer": "execution",
    }
    return Order(**(fields | overrides))


def fill(**overrides: Any) -> Fill:
    fields: dict[str, Any] = {
        "trace_id": TRACE_ID,
        "order_id": ids.new_id(),
        "decision_id": ids.new_id(),
        "symbol": "BTC/USDT",
        "side": "long",
        "leg": "entry",
        "quantity": 0.05,
        "price": 62_240.0,
        "fee": 1.24,
        "liquidity": "maker",
        "bar_time": BAR_TIME + timedelta(minutes=20),
        "producer": "execution",
    }
    return Fill(**(fields | overrides))


def trade_closed(**overrides: Any) -> TradeClosed:
    fields: dict[str, Any] = {
        "trace_id": TRACE_ID,
        "decision_id": ids.new_id(),
        "symbol": "BTC/USDT",
        "side": "long",
        "quantity": 0.05,
        "entry_price": 62_240.0,
        "exit_price": 63_470.0,
        "entry_time": BAR_TIME + timedelta(minutes=20),
        "exit_time": BAR_TIME + timedelta(hours=3),
        "exit_reason": "take_profit",
        "pnl": 58.9,
        "fees": 2.6,
        "realised_r": 1.92,
        "mae_r": -0.35,
        "mfe_r": 2.05,
        "hold_bars": 32,
        "p_win": 0.57,
        "strategy": "breakout",
        "model_versions": MODEL_VERSIONS,
        "producer": "execution",
    }
    return TradeClosed(**(fields | overrides))


def model_activated(**overrides: Any) -> ModelActivated:
    fields: dict[str, Any] = {
        "family": "entry",
        "version": "e-2024.03.01",
        "status": "production",
        "artifact_uri": "file:///models/entry/e-2024.03.01.onnx",
        "sha256": SHA,
        "feature_schema": "fs-v1",
        "previous_version": "e-2024.02.01",
        "producer": "model-watcher",
    }
    return ModelActivated(**(fields | overrides))


def model_rejected(**overrides: Any) -> ModelRejected:
    fields: dict[str, Any] = {
        "family": "entry",
        "version": "e-2024.03.02",
        "reason": rejection(
            gate="golden",
            code=ReasonCode.MODEL_GOLDEN_MISMATCH,
            values={"max_abs_diff": 0.031, "tolerance": 1e-6},
        ),
        "producer": "model-watcher",
    }
    return ModelRejected(**(fields | overrides))


def kill_switch(**overrides: Any) -> KillSwitchChanged:
    fields: dict[str, Any] = {
        "scope": "symbol",
        "key": "BTC/USDT",
        "on": True,
        "reason": "exchange maintenance",
        "by": "operator",
        "producer": "cli",
    }
    return KillSwitchChanged(**(fields | overrides))


def retrain_requested(**overrides: Any) -> RetrainRequested:
    fields: dict[str, Any] = {
        "family": "confirm",
        "reason": rejection(
            gate="drift", code=ReasonCode.FEATURE_DRIFT, values={"psi": 0.31, "limit": 0.2}
        ),
        "values": {"window_days": 14, "psi": 0.31},
        "producer": "model-watcher",
    }
    return RetrainRequested(**(fields | overrides))


def dead_letter(**overrides: Any) -> DeadLetter:
    payload = b'{"type": "CandidateSignal", "symbol": 42}'
    fields: dict[str, Any] = {
        "service": "risk",
        "code": ReasonCode.VALIDATION_ERROR,
        "error": "symbol: Input should be a valid string",
        "subject": "ml.confirmed.BTC-USDT",
        "headers": {"Decile-Type": "CandidateSignal"},
        "payload_b64": base64.b64encode(payload).decode(),
        "original_id": ids.new_id(),
        "deliveries": 1,
        "producer": "risk",
    }
    return DeadLetter(**(fields | overrides))


FACTORIES: dict[type[Event], Callable[..., Event]] = {
    BarBatch: bar_batch,
    QuarantinedBar: quarantined_bar,
    FeatureBatch: feature_batch,
    CandidateSignal: candidate,
    InferenceCycle: inference_cycle,
    ConfirmDecision: confirm,
    RiskDecision: risk_approved,
    Order: order,
    Fill: fill,
    TradeClosed: trade_closed,
    ModelActivated: model_activated,
    ModelRejected: model_rejected,
    KillSwitchChanged: kill_switch,
    RetrainRequested: retrain_requested,
    DeadLetter: dead_letter,
}


def make(cls: type[Event], **overrides: Any) -> Event:
    """A valid instance of ``cls`` with ``overrides`` applied."""
    return FACTORIES[cls](**overrides)


__all__ = ["FACTORIES", "make"]
