"""Market-data events: bar cross-sections and quarantined bars."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Self

import numpy as np
from pydantic import Field, model_validator

from decile.events.base import ColumnarEvent, Event, Scalar, Symbols, Timeframe, UtcDatetime
from decile.reasons import ReasonCode

OHLCV: tuple[str, ...] = ("open", "high", "low", "close", "volume")


class BarBatch(ColumnarEvent):
    """All closed bars of one timeframe for one bar time (a cycle), one shard.

    ``bar_time`` is the bars' OPEN time (UTC); the bars closed at
    ``bar_time + tf``. Symbols expected but absent when the watermark passed are
    listed in ``missing``; they are never waited on forever. Rows are already
    quality-checked by ingest; the validator re-checks cheaply so a corrupt
    publisher cannot poison consumers.
    """

    type_name: ClassVar[str] = "BarBatch"
    type: Literal["BarBatch"] = "BarBatch"
    schema_version: Literal[1] = 1
    tf: Timeframe
    bar_time: UtcDatetime
    shard: Annotated[int, Field(ge=0)] = 0
    expected: Annotated[int, Field(ge=0)] = 0
    missing: Symbols = ()
    source: str = ""

    @property
    def columns(self) -> tuple[str, ...]:
        return OHLCV

    @model_validator(mode="after")
    def _sane_bars(self) -> Self:
        v = self.values
        if not np.isfinite(v).all():
            raise ValueError("bar values must be finite")
        o, h, lo, c, vol = v.T
        if (v[:, :4] <= 0).any():
            raise ValueError("prices must be > 0")
        if (vol < 0).any():
            raise ValueError("volume must be >= 0")
        if ((lo > np.minimum(o, c)) | (h < np.maximum(o, c))).any():
            raise ValueError("bars must satisfy low <= open, close <= high")
        return self


class QuarantinedBar(Event):
    """A bar refused by data quality, with the offending values and its source."""

    type_name: ClassVar[str] = "QuarantinedBar"
    type: Literal["QuarantinedBar"] = "QuarantinedBar"
    schema_version: Literal[1] = 1
    code: ReasonCode
    symbol: str  # not Symbol: a bad symbol is itself a reason to quarantine
    tf: Timeframe
    bar_time: UtcDatetime | None = None
    source: str = ""
    values: dict[str, Scalar] = Field(default_factory=dict)
    detail: str = ""
