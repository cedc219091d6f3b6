"""Typed, versioned event contracts (pydantic v2). See STYLE.md habit 5."""

from decile.events.base import ColumnarEvent, Event, Rejection
from decile.events.execution import Fill, Order, TradeClosed
from decile.events.features import FeatureBatch
from decile.events.market import OHLCV, BarBatch, QuarantinedBar
from decile.events.models import ModelActivated, ModelRejected, RetrainRequested
from decile.events.ops import DeadLetter
from decile.events.risk import KillSwitchChanged, OrderIntent, RiskDecision
from decile.events.signals import CandidateSignal, ConfirmDecision, InferenceCycle

ALL_EVENTS: tuple[type[Event], ...] = (
    BarBatch,
    QuarantinedBar,
    FeatureBatch,
    CandidateSignal,
    InferenceCycle,
    ConfirmDecision,
    RiskDecision,
    Order,
    Fill,
    TradeClosed,
    ModelActivated,
    ModelRejected,
    KillSwitchChanged,
    RetrainRequested,
    DeadLetter,
)
EVENT_TYPES: dict[str, type[Event]] = {cls.type_name: cls for cls in ALL_EVENTS}

__all__ = [
    "ALL_EVENTS",
    "EVENT_TYPES",
    "OHLCV",
    "BarBatch",
    "CandidateSignal",
    "ColumnarEvent",
    "ConfirmDecision",
    "DeadLetter",
    "Event",
    "FeatureBatch",
    "Fill",
    "InferenceCycle",
    "KillSwitchChanged",
    "ModelActivated",
    "ModelRejected",
    "Order",
    "OrderIntent",
    "QuarantinedBar",
    "Rejection",
    "RetrainRequested",
    "RiskDecision",
    "TradeClosed",
]
