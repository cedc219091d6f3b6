"""Correlation of a symbol's rolling returns with the open book's.

The book's return series is the open positions' symbol returns, signed by side
and weighted by notional, so a long and a short of the same coin cancel. The
series are aligned on their newest ``n`` bars (the shortest common length) and
rows with a non-finite value are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from decile.risk.book import BookState


@dataclass(frozen=True, slots=True)
class BookCorrelation:
    value: float | None  # Pearson correlation of the symbol with the book; None = undefined
    observations: int


def book_correlation(symbol: str, book: BookState) -> BookCorrelation:
    mine = book.returns.get(symbol)
    weights: dict[str, float] = {}
    for p in book.positions:
        sign = 1.0 if p.side == "long" else -1.0
        weights[p.symbol] = weights.get(p.symbol, 0.0) + sign * p.notional
    legs = [(w, book.returns[s]) for s, w in weights.items() if w != 0.0 and s in book.returns]
    if mine is None or not legs:
        return BookCorrelation(None, 0)
    n = min(len(mine), *(len(r) for _, r in legs))
    if n < 2:
        return BookCorrelation(None, n)
    x = np.asarray(mine[-n:], dtype=np.float64)
    y = np.zeros(n)
    for w, r in legs:
        y += w * np.asarray(r[-n:], dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 2 or x.std() == 0.0 or y.std() == 0.0:
        return BookCorrelation(None, int(x.size))
    return BookCorrelation(float(np.corrcoef(x, y)[0, 1]), int(x.size))
