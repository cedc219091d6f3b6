"""Tail loss: the CVaR of realised R and the book's tail budget.

Stops bound a trade's planned loss at 1R; the realised tail says how far past
the stop trades really go (gaps, slippage, a stop model that is off). The
historical CVaR at ``alpha`` is the mean of the worst ``1 - alpha`` share of
recent trades. Each open position is then assumed to lose
``risk_amount * max(1, -CVaR)`` in a tail event, and the sum over the book must
stay within ``tail_budget`` of equity: the headroom caps the next order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from decile.risk.book import BookState
from decile.risk.config import RiskConfig


def cvar(values: Sequence[float], alpha: float) -> float:
    """Mean of the worst ``ceil((1 - alpha) * n)`` values (at least one); needs n >= 1."""
    r = np.asarray(values, dtype=np.float64)
    # the epsilon keeps 0.05 * 20 (= 1.0000000000000009 in floats) at one value, not two
    k = max(1, math.ceil((1.0 - alpha) * r.size - 1e-9))
    return float(np.partition(r, k - 1)[:k].mean())


@dataclass(frozen=True, slots=True)
class Tail:
    cvar_r: float  # CVaR of realised R per trade (negative), or the prior
    trades: int  # closed trades it was estimated from (0 = prior used)
    book_tail: float  # tail loss of the open book, account currency
    budget: float  # tail_budget x equity, account currency

    @property
    def multiplier(self) -> float:
        """Loss per unit of planned risk in a tail event: never below the stop itself."""
        return max(1.0, -self.cvar_r)

    @property
    def headroom(self) -> float:
        return self.budget - self.book_tail


def tail(book: BookState, config: RiskConfig) -> Tail:
    recent = book.recent_r[-config.cvar_window :]
    used = len(recent) >= config.cvar_min_trades
    cvar_r = cvar(recent, config.cvar_alpha) if used else config.cvar_prior_r
    multiplier = max(1.0, -cvar_r)
    return Tail(
        cvar_r=cvar_r,
        trades=len(recent) if used else 0,
        book_tail=sum(p.risk_amount for p in book.positions) * multiplier,
        budget=config.tail_budget * book.equity,
    )
