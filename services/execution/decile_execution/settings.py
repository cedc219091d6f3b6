"""Settings of the execution service (``DECILE_EXECUTION__*``)."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, model_validator

from decile.config import Section, ServiceSettings
from decile.market.timeframes import parse
from decile.paper import PaperConfig
from decile.paper.config import MarketEntry

_D = PaperConfig()  # every default is documented on PaperConfig
_PAPER = tuple(name for name in _D.to_dict() if name != "tf")


class ExecutionSection(Section):
    """``DECILE_EXECUTION__*``. The paper broker's settings map one to one onto
    :class:`decile.paper.PaperConfig` (same names, same defaults, validated by it at
    start); ``tf`` (5m) is both the bar feed consumed (``md.bars.<tf>``) and the broker's
    timeframe. ``account`` ("paper") keys the state row in ``execution_state``: two
    execution services sharing one database need two accounts."""

    tf: Annotated[str, Field(pattern=r"^[1-9][0-9]*[mhdw]$")] = _D.tf.value
    account: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = "paper"
    # the state snapshot is saved this long after inputs were taken, behind the decision
    # path (one write for a burst); a crash replays the inputs since from the streams
    save_delay_s: Annotated[float, Field(ge=0.0, le=60.0)] = 0.2

    maker_fee_bps: float = _D.maker_fee_bps
    taker_fee_bps: float = _D.taker_fee_bps
    slippage_bps: float = _D.slippage_bps
    slippage_range_fraction: float = _D.slippage_range_fraction
    max_slippage_fraction: float = _D.max_slippage_fraction
    market_entry: MarketEntry = _D.market_entry
    limit_touch_fills: bool = _D.limit_touch_fills
    order_expiry_bars: int = _D.order_expiry_bars
    timeout_bars: int = _D.timeout_bars
    starting_equity: float = _D.starting_equity
    dedup_retention_bars: int = _D.dedup_retention_bars

    def config(self) -> PaperConfig:
        return PaperConfig(tf=parse(self.tf), **{name: getattr(self, name) for name in _PAPER})

    @model_validator(mode="after")
    def _valid_config(self) -> Self:
        self.config()  # PaperConfig's ValueError names the bad field (or timeframe)
        return self


class ExecutionSettings(ServiceSettings):
    service: str = "execution"
    execution: ExecutionSection = ExecutionSection()
