"""Position size: fixed fractional risk over the stop distance, then the caps.

``risk_per_trade x equity`` is what the trade may lose at its stop, so the
target quantity is that amount over the stop distance (``sl_katr x ATR``). It
is then capped by what is left of the symbol's and the cluster's exposure limits
(notional at the planned entry price) and of the book's tail budget (the new
position's tail loss is its risk times the CVaR multiplier). The smallest of
these wins and is named, so a shrunken order says why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from decile.risk.book import BookState
from decile.risk.config import RiskConfig
from decile.risk.context import CandidateContext
from decile.risk.tail import tail


@dataclass(frozen=True, slots=True)
class Sizing:
    quantity: float
    target_quantity: float  # fixed fractional, before caps
    caps: Mapping[str, float]  # gate name -> largest quantity it allows
    binding: str  # "risk_per_trade" or the name of the cap that set the quantity

    @property
    def capped(self) -> bool:
        return self.binding != "risk_per_trade"


def size(ctx: CandidateContext, book: BookState, config: RiskConfig, entry_price: float) -> Sizing:
    d = ctx.stop_distance
    target = config.risk_per_trade * book.equity / d
    symbol_room = config.max_symbol_exposure * book.equity - book.symbol_notional(ctx.symbol)
    cluster = book.cluster_of(ctx.symbol)
    cluster_room = config.max_cluster_exposure * book.equity - book.cluster_notional(cluster)
    t = tail(book, config)
    caps = {
        "symbol_exposure": max(0.0, symbol_room) / entry_price,
        "cluster_exposure": max(0.0, cluster_room) / entry_price,
        "cvar_budget": max(0.0, t.headroom) / (t.multiplier * d),
    }
    binding, quantity = "risk_per_trade", target
    for name, cap in caps.items():
        if cap < quantity:
            binding, quantity = name, cap
    return Sizing(quantity=max(0.0, quantity), target_quantity=target, caps=caps, binding=binding)
