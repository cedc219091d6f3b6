"""Settings of the risk service (``DECILE_RISK__*``)."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, model_validator

from decile.clock import ClockMode
from decile.config import Section, ServiceSettings
from decile.risk import RiskConfig

_D = RiskConfig()  # every limit's default is documented on RiskConfig


class RiskSection(Section):
    """``DECILE_RISK__*``. The limits map one to one onto :class:`decile.risk.RiskConfig`
    (same names, same defaults, validated by it at start). Service-only settings:
    ``tf`` the bar timeframe watched for freshness and returns (5m); ``start_equity``
    the account equity before the first closed trade in the EXEC stream (10,000);
    ``returns_window`` bars of returns kept per symbol for the correlation gate (200);
    ``clusters`` symbol -> cluster (JSON, e.g. ``{"ETH/USDT": "majors"}``; a symbol
    without one is its own cluster); ``clock`` ``wall`` (live: a decision is judged at
    the later of the wall clock and its confirm time) or ``event`` (replays: at the
    confirm's decision time, so a replay decides as live trading would have, however
    fast it runs; see :mod:`decile.clock`); ``winrate_window`` (500) closed trades whose
    win rate is compared with their mean p_win, ``winrate_max_gap`` (0.05) the gap past
    which a retrain of the entry model is requested (:mod:`decile.risk.outcomes`)."""

    tf: Annotated[str, Field(pattern=r"^[1-9][0-9]*[mhdw]$")] = "5m"
    start_equity: Annotated[float, Field(gt=0)] = 10_000.0
    returns_window: Annotated[int, Field(ge=2, le=10_000)] = 200
    clusters: dict[str, str] = Field(default_factory=dict)
    clock: ClockMode = "wall"
    winrate_window: Annotated[int, Field(ge=1, le=100_000)] = 500
    winrate_max_gap: Annotated[float, Field(gt=0, lt=1)] = 0.05

    max_data_age_bars: float = _D.max_data_age_bars
    max_model_age_s: float = _D.max_model_age_s
    max_daily_loss: float = _D.max_daily_loss
    max_drawdown: float = _D.max_drawdown
    max_open_positions: int = _D.max_open_positions
    max_symbol_exposure: float = _D.max_symbol_exposure
    max_cluster_exposure: float = _D.max_cluster_exposure
    max_book_correlation: float = _D.max_book_correlation
    min_correlation_obs: int = _D.min_correlation_obs
    cvar_alpha: float = _D.cvar_alpha
    cvar_window: int = _D.cvar_window
    cvar_min_trades: int = _D.cvar_min_trades
    cvar_prior_r: float = _D.cvar_prior_r
    cvar_limit_r: float = _D.cvar_limit_r
    tail_budget: float = _D.tail_budget
    fee_bps: float = _D.fee_bps
    slippage_bps: float = _D.slippage_bps
    max_cost_share: float = _D.max_cost_share
    min_p_win: float = _D.min_p_win
    risk_per_trade: float = _D.risk_per_trade
    entry_expiry_bars: int = _D.entry_expiry_bars

    def config(self) -> RiskConfig:
        return RiskConfig(**{name: getattr(self, name) for name in _D.limits()})

    @model_validator(mode="after")
    def _valid_limits(self) -> Self:
        self.config()  # RiskConfig's ValueError names every bad limit
        return self


class RiskSettings(ServiceSettings):
    service: str = "risk"
    risk: RiskSection = RiskSection()
