"""Fees and slippage: the only places a paper fill differs from the printed price.

Every cost is charged *against* the trader. Slippage models the spread and the
impact of a taker order as a fixed part (bps of price) plus a part that grows
with how violently the fill bar moved (a fraction of its range), because stop
and market orders fill exactly when the book is thin and price is running.
Maker fills (limit entries, take-profits) fill at their own price and pay no
slippage, only the maker fee.
"""

from __future__ import annotations

from typing import Literal

from decile.paper.config import PaperConfig

__all__ = ["Liquidity", "fee", "slippage", "taker_price"]

Liquidity = Literal["maker", "taker"]


def slippage(price: float, bar_range: float, config: PaperConfig) -> float:
    """Slippage per unit, in quote currency, for a taker fill at ``price``.

    ``price * slippage_bps / 1e4 + slippage_range_fraction * bar_range``, capped at
    ``max_slippage_fraction * price`` so a sell can never print <= 0. ``bar_range`` is
    the fill bar's ``high - low``; for a market order filled as it arrives, before
    its bar traded, the candidate's ATR (the range a bar is expected to have).
    """
    raw = price * config.slippage_bps / 1e4 + config.slippage_range_fraction * bar_range
    return min(raw, config.max_slippage_fraction * price)


def taker_price(price: float, buy: bool, bar_range: float, config: PaperConfig) -> float:
    """The price a taker order at reference ``price`` fills at: worse by the slippage."""
    slip = slippage(price, bar_range, config)
    return price + slip if buy else price - slip


def fee(price: float, quantity: float, liquidity: Liquidity, config: PaperConfig) -> float:
    """Fee in quote currency: bps of the filled notional, maker or taker rate."""
    bps = config.maker_fee_bps if liquidity == "maker" else config.taker_fee_bps
    return abs(price * quantity) * bps / 1e4
