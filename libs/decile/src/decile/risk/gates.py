"""The risk gates: pure checks, cheapest first; the first block is the reason.

Each rule reads ``(candidate, book, config)`` and returns None on pass or a
:class:`Block` naming a stable :class:`ReasonCode` and the compared values,
``limit`` and ``value`` first. :class:`Gate` binds a rule to its name and turns
a block into the :class:`Rejection` carried on ``risk.rejected``, with a
``detail`` such as ``DAILY_LOSS_LIMIT: limit=0.03, value=0.0345, ...``.
A refusal is a value, never an exception. No I/O, no clock: ``now`` is on the
candidate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from decile.events.base import Rejection, Scalar
from decile.reasons import ReasonCode
from decile.risk.book import BookState
from decile.risk.config import RiskConfig
from decile.risk.context import CandidateContext
from decile.risk.correlation import book_correlation
from decile.risk.edge import edge
from decile.risk.tail import tail
from decile.subjects import symbol_token


@dataclass(frozen=True, slots=True)
class Block:
    """A rule's refusal: the code and what was compared (``limit``, ``value``, context)."""

    code: ReasonCode
    values: dict[str, Scalar] = field(default_factory=dict)

    def rejection(self, gate: str) -> Rejection:
        values = {k: _finite(v) for k, v in self.values.items()}
        detail = f"{self.code.value}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in values.items())
        return Rejection(gate=gate, code=self.code, values=values, detail=detail)


def _finite(v: Scalar) -> Scalar:
    """Events refuse inf/NaN; a non-finite comparison is still reported, as text."""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def _fmt(v: Scalar) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _share(amount: float, equity: float) -> float:
    """``amount`` as a fraction of equity; no equity makes any exposure infinite."""
    return amount / equity if equity > 0 else float("inf")


Rule = Callable[[CandidateContext, BookState, RiskConfig], Block | None]


@dataclass(frozen=True, slots=True)
class Gate:
    """A named check: ``check`` returns None on pass or the rejection."""

    name: str
    rule: Rule

    def check(self, ctx: CandidateContext, book: BookState, config: RiskConfig) -> Rejection | None:
        block = self.rule(ctx, book, config)
        return None if block is None else block.rejection(self.name)


# ---- kill switches and freshness -----------------------------------------------------


def master_kill(ctx: CandidateContext, book: BookState, config: RiskConfig) -> Block | None:
    """The master switch, or any automatic halt (``auto.<reason>``), stops all new risk."""
    kill = book.kill
    if kill.master:
        key = "master"
    elif kill.auto:
        key = f"auto.{min(kill.auto)}"
    else:
        return None
    return Block(
        ReasonCode.MASTER_KILL,
        {"switch": key, "reason": kill.reasons.get(key, ""), "auto": ",".join(sorted(kill.auto))},
    )


def stale_data(ctx: CandidateContext, book: BookState, config: RiskConfig) -> Block | None:
    """The symbol's newest bar must have closed within ``max_data_age_bars`` bars."""
    last = book.last_bar_time.get(ctx.symbol)
    if last is None:
        return Block(
            ReasonCode.STALE_DATA,
            {"limit": config.max_data_age_bars, "value": None, "last_bar_time": None},
        )
    age_bars = (ctx.now - (last + ctx.bar)) / ctx.bar
    if age_bars <= config.max_data_age_bars:
        return None
    return Block(
        ReasonCode.STALE_DATA,
        {"limit": config.max_data_age_bars, "value": age_bars, "last_bar_time": last.isoformat()},
    )


def stale_model(ctx: CandidateContext, book: BookState, config: RiskConfig) -> Block | None:
    """An unknown or too old production model is refused for new decisions."""
    age = book.model_age_s
    if age is not None and age <= config.max_model_age_s:
        return None
    return Block(ReasonCode.MODEL_STALE, {"limit": config.max_model_age_s, "value": age})


def symbol_kill(ctx: CandidateContext, book: BookState, config: RiskConfig) -> Block | None:
    if ctx.symbol not in book.kill.symbols:
        return None
    key = f"symbol.{symbol_token(ctx.symbol)}"
    return Block(
        ReasonCode.SYMBOL_KILL,
        {"switch": key, "symbol": ctx.symbol, "reason": book.kill.reasons.get(key, "")},
    )


def strategy_kill(ctx: CandidateContext, book: BookState, config: RiskConfig) -> Block | None:
    if ctx.strategy not in book.kill.strategies:
        return None
    key = f"strategy.{ctx.strategy}"
    return Block(
        ReasonCode.STRATEGY_KILL,
        {"switch": key, "strategy": ctx.strategy, "reason": book.kill.reasons.get(key, "")},
    )


# ---- losses ------------------------------------------------------------------------


def daily_loss(ctx: CandidateContext, book: BookState, config: RiskConfig) -> Block | None:
    """Loss since 00:00 UTC as a fraction of start-of-day equity."""
    pnl = book.equity - book.start_of_day_equity
    loss = -pnl / book.start_of_day_equity
    if loss < config.max_daily_loss:
        return None
    return Block(
        ReasonCode.DAILY_LOSS_LIMIT,
        {
            "limit": config.max_daily_loss,
            "value": loss,
            "pnl_today": pnl,
            "start_of_day_equity": book.start_of_day_equity,
        },
    )


def drawdown(ctx: CandidateContext, book: BookState, config: RiskConfig) -> Block | None:
    """Decline from the equity high-water mark."""
    dd = (book.peak_equity - book.equity) / book.peak_equity
    if dd < config.max_drawdown:
        return None
    return Block(
        ReasonCode.DRAWDOWN_LIMIT,
        {
            "limit": config.max_drawdown,
            "value": dd,
            "equity": book.equity,
            "peak_equity": book.peak_equity,
        },
    )


# ---- concentration -----------------------------------------------------------------


def max_open_positions(ctx: CandidateContext, book: BookState, config: RiskConfig) -> Block | None:
    n = len(book.positions)
    if n < config.max_open_positions:
        return None
    return Block(ReasonCode.MAX_OPEN_POSITIONS, {"limit": config.max_open_positions, "value": n})


def symbol_exposure(ctx: CandidateContext, book: BookState, config: RiskConfig) -> Block | None:
    """Blocks when the symbol has no headroom left; sizing caps the order to what is left."""
    notional = book.symbol_notional(ctx.symbol)
    share = _share(notional, book.equity)
    if share < config.max_symbol_exposure:
        return None
    return Block(
        ReasonCode.SYMBOL_EXPOSURE,
        {
            "limit": config.max_symbol_exposure,
            "value": share,
            "symbol": ctx.symbol,
            "notional": notional,
            "equity": book.equity,
        },
    )


def cluster_exposure(ctx: CandidateContext, book: BookState, config: RiskConfig) -> Block | None:
    cluster = book.cluster_of(ctx.symbol)
    notional = book.cluster_notional(cluster)
    share = _share(notional, book.equity)
    if share < config.max_cluster_exposure:
        return None
    return Block(
        ReasonCode.CLUSTER_EXPOSURE,
        {
            "limit": config.max_cluster_exposure,
            "value": share,
            "cluster": cluster,
            "notional": notional,
            "equity": book.equity,
        },
    )


def book_correlation_gate(
    ctx: CandidateContext, book: BookState, config: RiskConfig
) -> Block | None:
    """|correlation| of the symbol's returns with the book's above the limit.

    Too few overlapping returns cannot estimate it: the gate passes and the
    exposure caps bound the concentration. ``value`` is signed by the new side
    (+ adds to the book's direction, - hedges it); the limit applies to its size.
    """
    found = book_correlation(ctx.symbol, book)
    if found.value is None or found.observations < config.min_correlation_obs:
        return None
    signed = found.value if ctx.side == "long" else -found.value
    if abs(signed) <= config.max_book_correlation:
        return None
    return Block(
        ReasonCode.BOOK_CORRELATION,
        {
            "limit": config.max_book_correlation,
            "value": signed,
            "observations": found.observations,
        },
    )


# ---- tail, edge, probability -------------------------------------------------------


def cvar_budget(ctx: CandidateContext, book: BookState, config: RiskConfig) -> Block | None:
    """Blocks a fat realised tail (CVaR below its limit) or a spent book tail budget."""
    t = tail(book, config)
    if t.cvar_r < config.cvar_limit_r:
        return Block(
            ReasonCode.CVAR_BUDGET,
            {
                "limit": config.cvar_limit_r,
                "value": t.cvar_r,
                "alpha": config.cvar_alpha,
                "trades": t.trades,
            },
        )
    if t.headroom > 0:
        return None
    return Block(
        ReasonCode.CVAR_BUDGET,
        {
            "limit": config.tail_budget,
            "value": _share(t.book_tail, book.equity),
            "cvar_r": t.cvar_r,
            "book_tail": t.book_tail,
        },
    )


def net_ev(ctx: CandidateContext, book: BookState, config: RiskConfig) -> Block | None:
    """Net expected value after fees and slippage > 0, and costs <= a share of the edge."""
    e = edge(ctx, config)
    parts: dict[str, Scalar] = {"gross_r": e.gross_r, "cost_r": e.cost_r}
    if e.net_r <= 0:
        return Block(ReasonCode.NEGATIVE_NET_EV, {"limit": 0.0, "value": e.net_r, **parts})
    if e.cost_share <= config.max_cost_share:
        return None
    return Block(
        ReasonCode.COSTS_EXCEED_EDGE,
        {"limit": config.max_cost_share, "value": e.cost_share, **parts},
    )


def win_probability_floor(
    ctx: CandidateContext, book: BookState, config: RiskConfig
) -> Block | None:
    if ctx.p_win >= config.min_p_win:
        return None
    return Block(ReasonCode.WIN_PROBABILITY_FLOOR, {"limit": config.min_p_win, "value": ctx.p_win})


# Cheapest first (DESIGN.md, "Risk gates"): a halted book costs one comparison.
GATES: tuple[Gate, ...] = (
    Gate("master_kill", master_kill),
    Gate("stale_data", stale_data),
    Gate("stale_model", stale_model),
    Gate("symbol_kill", symbol_kill),
    Gate("strategy_kill", strategy_kill),
    Gate("daily_loss", daily_loss),
    Gate("drawdown", drawdown),
    Gate("max_open_positions", max_open_positions),
    Gate("symbol_exposure", symbol_exposure),
    Gate("cluster_exposure", cluster_exposure),
    Gate("book_correlation", book_correlation_gate),
    Gate("cvar_budget", cvar_budget),
    Gate("net_ev", net_ev),
    Gate("win_probability_floor", win_probability_floor),
)

BY_NAME: Mapping[str, Gate] = {g.name: g for g in GATES}
