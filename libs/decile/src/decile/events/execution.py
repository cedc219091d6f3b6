"""Paper (later live) execution: orders, fills and closed trades."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from decile.events.base import Event, NonNegative, Price, Probability, Symbol, UtcDatetime
from decile.events.risk import EntryType
from decile.events.signals import Side


class Order(Event):
    type_name: ClassVar[str] = "Order"
    type: Literal["Order"] = "Order"
    schema_version: Literal[1] = 1
    decision_id: str
    symbol: Symbol
    side: Side
    entry_type: EntryType
    quantity: Annotated[float, Field(gt=0)]
    price: Price
    stop_price: Price
    take_profit: Price
    status: Literal["accepted", "cancelled", "expired"]
    expires_at: UtcDatetime


class Fill(Event):
    type_name: ClassVar[str] = "Fill"
    type: Literal["Fill"] = "Fill"
    schema_version: Literal[1] = 1
    order_id: str
    decision_id: str
    symbol: Symbol
    side: Side
    leg: Literal["entry", "exit"]
    quantity: Annotated[float, Field(gt=0)]
    price: Price
    fee: NonNegative
    liquidity: Literal["maker", "taker"]
    bar_time: UtcDatetime


class TradeClosed(Event):
    type_name: ClassVar[str] = "TradeClosed"
    type: Literal["TradeClosed"] = "TradeClosed"
    schema_version: Literal[1] = 1
    decision_id: str
    symbol: Symbol
    side: Side
    quantity: Annotated[float, Field(gt=0)]
    entry_price: Price
    exit_price: Price
    entry_time: UtcDatetime
    exit_time: UtcDatetime
    exit_reason: Literal["stop", "take_profit", "timeout"]
    pnl: float  # after fees and slippage, quote currency
    fees: NonNegative
    realised_r: float
    mae_r: float
    mfe_r: float
    hold_bars: Annotated[int, Field(ge=0)]
    p_win: Probability
    strategy: str
    model_versions: dict[str, str]
