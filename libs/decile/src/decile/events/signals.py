"""Candidate signals and their confirmation: few per cycle, one event per symbol."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from decile.events.base import (
    Event,
    NonNegative,
    Price,
    Probability,
    Rejection,
    Symbol,
    Timeframe,
    UtcDatetime,
)

Side = Literal["long", "short"]


class CandidateSignal(Event):
    """A proposal that survived the score floor and the cycle's top decile."""

    type_name: ClassVar[str] = "CandidateSignal"
    type: Literal["CandidateSignal"] = "CandidateSignal"
    schema_version: Literal[1] = 1
    symbol: Symbol
    tf: Timeframe
    bar_time: UtcDatetime
    strategy: Annotated[str, Field(min_length=1, max_length=64)]
    side: Side
    entry_price: Price
    atr: Annotated[float, Field(gt=0)]
    p_win: Probability
    sl_katr: Annotated[float, Field(gt=0)]
    rr_target: Annotated[float, Field(gt=0)]
    offset_katr: float
    score: float
    rank: Annotated[int, Field(ge=1)]
    cycle_size: Annotated[int, Field(ge=1)]
    cycle_threshold: float
    score_floor: float
    model_versions: dict[str, str]
    feature_schema: str
    source_id: str = ""  # the FeatureBatch id
    # Feature values of the candidate's own bar that later stages need and cannot
    # recompute (confirm's higher-timeframe bias reads ``h1_trend_20``); finite only.
    context: dict[str, float] = Field(default_factory=dict)


class InferenceCycle(Event):
    """What inference did with one feature cross-section: scored (by which versions,
    how many proposals, how many kept) or skipped (``skipped`` says why).

    Exactly one per ``feat.batch`` (id derived from it), so a subscriber can
    prove that no cycle was lost and none was scored by two model versions.
    """

    type_name: ClassVar[str] = "InferenceCycle"
    type: Literal["InferenceCycle"] = "InferenceCycle"
    schema_version: Literal[1] = 1
    tf: Timeframe
    bar_time: UtcDatetime
    source_id: str
    feature_schema: str
    model_versions: dict[str, str] = Field(default_factory=dict)
    symbols: Annotated[int, Field(ge=0)] = 0
    incomplete: Annotated[int, Field(ge=0)] = 0
    proposals: Annotated[int, Field(ge=0)] = 0
    kept: Annotated[int, Field(ge=0)] = 0
    cycle_threshold: float | None = None
    score_floor: float | None = None
    skipped: Rejection | None = None


class ConfirmDecision(Event):
    """Approve, invert or veto a candidate after its wait window."""

    type_name: ClassVar[str] = "ConfirmDecision"
    type: Literal["ConfirmDecision"] = "ConfirmDecision"
    schema_version: Literal[1] = 1
    candidate: CandidateSignal
    decision: Literal["approve", "invert", "veto"]
    side: Side
    p_confirm: Probability | None = None
    atr_bucket: Annotated[int, Field(ge=0)] = 0
    window_bars: Annotated[int, Field(ge=0)] = 0
    flow: dict[str, float] = Field(default_factory=dict)
    model_version: str = ""
    reason: Rejection | None = None
    decided_at: UtcDatetime
    fill_price_hint: NonNegative | None = None
