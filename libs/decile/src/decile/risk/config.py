"""The limits every risk gate and the sizing read: one frozen value, checked once."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskConfig:
    """Risk limits. Fractions are of equity unless stated; R is the planned risk of a
    trade (entry to stop); every default is stated here and justified where it is a
    policy choice rather than a convention.

    Freshness
        max_data_age_bars = 2.0
            The last bar of the candidate's symbol must have CLOSED no more than two
            bars of the candidate's timeframe before ``now`` (one missed cycle plus
            latency). A symbol with no bar at all is stale.
        max_model_age_s = 1_209_600 (14 days)
            Age of the production model (from ``ModelActivated`` / the registry),
            passed in by the service. Twice a weekly retraining cadence: DESIGN.md
            refuses a model older than twice its cadence for new decisions. Unknown
            age is stale.

    Losses
        max_daily_loss = 0.03
            Loss since the start of the UTC day as a fraction of start-of-day equity
            (mark-to-market) at which new risk stops for the day.
        max_drawdown = 0.10
            Decline from peak equity at which new risk stops until an operator acts.

    Concentration
        max_open_positions = 10
        max_symbol_exposure = 0.20
            Gross notional on one symbol (all sides and strategies) over equity.
        max_cluster_exposure = 0.40
            Gross notional on one correlated cluster over equity; a symbol without a
            cluster is its own cluster.
        max_book_correlation = 0.80
            Largest |Pearson correlation| allowed between the symbol's rolling returns
            and the book's (open positions' returns, signed by side, notional weighted).
        min_correlation_obs = 30
            Fewer overlapping returns than this cannot estimate a correlation: the gate
            passes and the exposure caps alone bound the concentration.

    Tail loss (CVaR of realised R)
        cvar_alpha = 0.95
            CVaR is the mean of the worst (1 - alpha) share of recent realised R.
        cvar_window = 250
            Closed trades considered (the most recent ones).
        cvar_min_trades = 20
            Below this the empirical tail is noise; ``cvar_prior_r`` is used instead.
        cvar_prior_r = -1.5
            Assumed CVaR until there is evidence: half an R worse than the stop, so the
            tail budget is not over-allocated while the record is short.
        cvar_limit_r = -2.5
            With stops at -1R, a healthy stop-based book has a CVaR95 near -1.1R to
            -1.3R (slippage past the stop). An average of -2.5R in the worst 5% means
            stops are gapped through by 1.5R or more: sizing on 1R understates real risk
            by 2.5x, so new risk stops until that is understood.
        tail_budget = 0.03
            Budget for the book's joint tail loss: sum over open positions of
            risk_amount x max(1, -CVaR) must stay within 3% of equity, the daily loss
            limit, so one tail event across the whole book cannot breach it alone.
            New orders are sized down to the headroom.

    Costs and edge
        fee_bps = 5.0
            Exchange fee per side (USDT-margined perpetual taker rate).
        slippage_bps = 2.0
            Expected slippage per side on liquid pairs. A round trip pays
            2 x (fee_bps + slippage_bps).
        max_cost_share = 0.40
            Round-trip costs may consume at most 40% of the gross expected value.
        min_p_win = 0.50
            Calibrated probability of +1R before -1R below which a candidate is refused.

    Sizing and orders
        risk_per_trade = 0.005
            Fixed fractional risk: 0.5% of equity lost if the stop is hit.
        entry_expiry_bars = 3
            An unfilled entry order expires this many bars of the candidate's
            timeframe after the decision.
    """

    max_data_age_bars: float = 2.0
    max_model_age_s: float = 14 * 86_400.0
    max_daily_loss: float = 0.03
    max_drawdown: float = 0.10
    max_open_positions: int = 10
    max_symbol_exposure: float = 0.20
    max_cluster_exposure: float = 0.40
    max_book_correlation: float = 0.80
    min_correlation_obs: int = 30
    cvar_alpha: float = 0.95
    cvar_window: int = 250
    cvar_min_trades: int = 20
    cvar_prior_r: float = -1.5
    cvar_limit_r: float = -2.5
    tail_budget: float = 0.03
    fee_bps: float = 5.0
    slippage_bps: float = 2.0
    max_cost_share: float = 0.40
    min_p_win: float = 0.50
    risk_per_trade: float = 0.005
    entry_expiry_bars: int = 3

    def __post_init__(self) -> None:
        problems = [f"{name}: {why}" for name, why in _violations(self)]
        if problems:
            raise ValueError("invalid RiskConfig: " + "; ".join(problems))

    def limits(self) -> dict[str, float | int]:
        """Every limit by name, for the start-up log line (the engine logs what it applies)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def round_trip_bps(self) -> float:
        """Fees and slippage paid on entry and exit, in basis points of the price."""
        return 2.0 * (self.fee_bps + self.slippage_bps)


_FRACTIONS = (
    "max_daily_loss",
    "max_drawdown",
    "max_symbol_exposure",
    "max_cluster_exposure",
    "max_book_correlation",
    "tail_budget",
    "max_cost_share",
    "risk_per_trade",
)
_POSITIVE_INTS = ("max_open_positions", "min_correlation_obs", "cvar_window", "entry_expiry_bars")


def _violations(c: RiskConfig) -> list[tuple[str, str]]:
    """Each bad field with why; a bad limit must stop start-up, not weaken a gate."""
    out: list[tuple[str, str]] = []
    for name in _FRACTIONS:
        if not 0.0 < getattr(c, name) <= 1.0:
            out.append((name, f"must be in (0, 1], got {getattr(c, name)!r}"))
    for name in _POSITIVE_INTS:
        if getattr(c, name) < 1:
            out.append((name, f"must be >= 1, got {getattr(c, name)!r}"))
    if c.max_data_age_bars <= 0:
        out.append(("max_data_age_bars", "must be > 0"))
    if c.max_model_age_s <= 0:
        out.append(("max_model_age_s", "must be > 0"))
    if not 0.5 <= c.cvar_alpha < 1.0:
        out.append(("cvar_alpha", f"must be in [0.5, 1), got {c.cvar_alpha!r}"))
    if c.cvar_min_trades < 1:
        out.append(("cvar_min_trades", "must be >= 1"))
    if c.cvar_prior_r >= 0 or c.cvar_limit_r >= 0:
        out.append(("cvar_prior_r/cvar_limit_r", "a tail loss in R must be negative"))
    if c.fee_bps < 0 or c.slippage_bps < 0:
        out.append(("fee_bps/slippage_bps", "must be >= 0"))
    if not 0.0 <= c.min_p_win < 1.0:
        out.append(("min_p_win", f"must be in [0, 1), got {c.min_p_win!r}"))
    return out
