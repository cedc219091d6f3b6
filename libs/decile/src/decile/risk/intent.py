"""Order geometry: entry type and price from the offset, stop and take profit.

The offset model's sign picks the order type (DESIGN.md, "Models"):
``offset_katr < 0`` waits for a better price with a limit order
(``|offset| x ATR`` below the reference for a long, above it for a short);
``offset_katr > 0`` asks the market to prove the move with a stop order the
same distance beyond it; zero enters at market, at the last close the
decision knew (after a confirm window, its last bar's). Stop and take profit are
measured from the planned entry price, so one R is the same distance whatever
the entry type.
"""

from __future__ import annotations

from dataclasses import dataclass

from decile.events.risk import EntryType, OrderIntent
from decile.risk.config import RiskConfig
from decile.risk.context import CandidateContext

# offsets smaller than this many ATRs are rounding noise, not a price improvement
_ZERO_OFFSET_KATR = 1e-9


@dataclass(frozen=True, slots=True)
class Entry:
    type: EntryType
    price: float


def entry(ctx: CandidateContext) -> Entry:
    off = ctx.offset_katr * ctx.atr
    sign = 1.0 if ctx.side == "long" else -1.0
    if abs(ctx.offset_katr) < _ZERO_OFFSET_KATR:
        return Entry("market", ctx.market_price)
    # limit: off < 0 moves a long's price down and a short's up; stop: the opposite
    kind: EntryType = "limit" if off < 0 else "stop"
    return Entry(kind, ctx.entry_price + sign * off)


@dataclass(frozen=True, slots=True)
class Bracket:
    stop: float
    take_profit: float


def bracket(ctx: CandidateContext, entry_price: float) -> Bracket:
    """Stop one R (``sl_katr x ATR``) against the trade, target ``rr_target`` R for it."""
    sign = 1.0 if ctx.side == "long" else -1.0
    r = ctx.stop_distance
    return Bracket(stop=entry_price - sign * r, take_profit=entry_price + sign * ctx.rr_target * r)


def order_intent(
    ctx: CandidateContext, planned: Entry, quantity: float, config: RiskConfig
) -> OrderIntent:
    """The approved order. Prices at or below zero mean a stop distance or offset larger
    than the price itself: corrupt input, refused with a ValueError that names it."""
    b = bracket(ctx, planned.price)
    if min(planned.price, b.stop, b.take_profit) <= 0:
        raise ValueError(
            f"{ctx.symbol}: order prices must be > 0 (entry={planned.price:.6g}, "
            f"stop={b.stop:.6g}, take_profit={b.take_profit:.6g}); "
            f"atr={ctx.atr:.6g} is out of scale with entry_price={ctx.entry_price:.6g}"
        )
    return OrderIntent(
        symbol=ctx.symbol,
        side=ctx.side,
        quantity=quantity,
        entry_type=planned.type,
        entry_price=planned.price,
        stop_price=b.stop,
        take_profit=b.take_profit,
        expires_at=ctx.now + config.entry_expiry_bars * ctx.bar,
        risk_amount=quantity * ctx.stop_distance,
    )
