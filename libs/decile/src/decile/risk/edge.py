"""Expected value of a proposal in R, before and after costs.

A trade wins ``rr_target`` R with probability ``p_win`` and loses 1R otherwise,
so its gross edge is ``p_win * rr_target - (1 - p_win)``. Fees and slippage are
paid on entry and exit whatever the outcome; in R they are the round-trip cost
in price units over the stop distance: ``round_trip_bps / 1e4 * entry / (sl_katr * atr)``.
A tight stop makes the same fee a bigger share of R, which is why the cost gate
looks at R and not at the price.
"""

from __future__ import annotations

from dataclasses import dataclass

from decile.risk.config import RiskConfig
from decile.risk.context import CandidateContext


@dataclass(frozen=True, slots=True)
class Edge:
    gross_r: float
    cost_r: float

    @property
    def net_r(self) -> float:
        return self.gross_r - self.cost_r

    @property
    def cost_share(self) -> float:
        """Costs over gross edge; infinite when there is no gross edge to pay them from."""
        return self.cost_r / self.gross_r if self.gross_r > 0 else float("inf")


def edge(ctx: CandidateContext, config: RiskConfig) -> Edge:
    gross = ctx.p_win * ctx.rr_target - (1.0 - ctx.p_win)
    cost = config.round_trip_bps / 1e4 * ctx.entry_price / ctx.stop_distance
    return Edge(gross_r=gross, cost_r=cost)
