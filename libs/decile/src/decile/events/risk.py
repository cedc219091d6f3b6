"""Risk decisions: an order intent, or a rejection naming the first gate that blocked."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Self

from pydantic import Field, model_validator

from decile.events.base import Contract, Event, Price, Rejection, Scalar, Symbol, UtcDatetime
from decile.events.signals import ConfirmDecision, Side

EntryType = Literal["market", "limit", "stop"]


class OrderIntent(Contract):
    symbol: Symbol
    side: Side
    quantity: Annotated[float, Field(gt=0)]
    entry_type: EntryType
    entry_price: Price
    stop_price: Price
    take_profit: Price
    expires_at: UtcDatetime
    risk_amount: Annotated[float, Field(gt=0)]


class RiskDecision(Event):
    type_name: ClassVar[str] = "RiskDecision"
    type: Literal["RiskDecision"] = "RiskDecision"
    schema_version: Literal[1] = 1
    confirm: ConfirmDecision
    outcome: Literal["approved", "rejected"]
    intent: OrderIntent | None = None
    rejection: Rejection | None = None
    checked: tuple[str, ...] = ()  # gates evaluated, in order
    snapshot: dict[str, Scalar] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if (self.outcome == "approved") != (self.intent is not None):
            raise ValueError("an approved decision carries an intent, a rejected one none")
        if (self.outcome == "rejected") != (self.rejection is not None):
            raise ValueError("a rejected decision carries its rejection")
        return self

    @property
    def symbol(self) -> str:
        return self.confirm.candidate.symbol


class KillSwitchChanged(Event):
    type_name: ClassVar[str] = "KillSwitchChanged"
    type: Literal["KillSwitchChanged"] = "KillSwitchChanged"
    schema_version: Literal[1] = 1
    scope: Literal["master", "symbol", "strategy", "auto"]
    key: str = "*"
    on: bool
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    by: str = "operator"
