"""Fill rules: what one bar does to one order or one position.

A bar is four prices and no path, so every rule assumes the worst order of
events inside it, the same way the training label does
(:mod:`decile.training.labels`):

* a resting order never fills on the bar it was submitted for (the broker only
  asks about later bars), so a decision cannot trade on prices it already saw
  (a market order fills as it arrives, at the last price it saw: see the broker);
* a limit fills at its price when the bar trades through it, never better
  (a gap in our favour is not credited); a stop triggers on a touch and fills at
  its price, or at the open when the bar gaps past it, then slips;
* a bar that touches both the stop and the take-profit is a stop;
* in the bar a limit or stop entry fills, only the stop may exit (whatever
  happened before the fill cannot help the trade, but the drop after it can
  hurt it); a market entry holds the bar from its open, so both may exit.

Pure functions on floats: the broker loops over its few open orders and
positions, never over the cross-section.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from decile.events.risk import EntryType
from decile.paper.config import PaperConfig
from decile.paper.costs import Liquidity, taker_price

__all__ = ["Bar", "Excursion", "ExitReason", "Fill", "entry_fill", "excursion", "exit_fill"]

ExitReason = Literal["stop", "take_profit", "timeout"]


class Bar(NamedTuple):
    """One symbol's bar: open time (epoch ms, UTC) and prices."""

    time_ms: int
    open: float
    high: float
    low: float
    close: float


@dataclass(frozen=True, slots=True)
class Fill:
    """Where a leg filled (costs already in the price) and how it took liquidity."""

    price: float
    liquidity: Liquidity


class Excursion(NamedTuple):
    """Per-unit price moves from the entry: ``adverse`` and ``favourable``, both >= 0."""

    adverse: float
    favourable: float


def _below(bar: Bar, price: float, touch: bool) -> bool:
    return bar.low <= price if touch else bar.low < price


def _above(bar: Bar, price: float, touch: bool) -> bool:
    return bar.high >= price if touch else bar.high > price


def entry_fill(
    entry_type: EntryType, long: bool, price: float, bar: Bar, config: PaperConfig
) -> Fill | None:
    """The entry fill of a resting order in ``bar``, or None when the bar does not reach it.

    ``market``: the open, slipped. ``limit``: its price, maker, once the bar
    trades through it. ``stop``: triggered on a touch; the stop price or the
    open if the bar gapped past it, slipped.
    """
    if entry_type == "market":
        return Fill(taker_price(bar.open, long, bar.high - bar.low, config), "taker")
    if entry_type == "limit":
        touch = config.limit_touch_fills
        hit = _below(bar, price, touch) if long else _above(bar, price, touch)
        return Fill(price, "maker") if hit else None
    if long and bar.high >= price:
        return Fill(taker_price(max(bar.open, price), True, bar.high - bar.low, config), "taker")
    if not long and bar.low <= price:
        return Fill(taker_price(min(bar.open, price), False, bar.high - bar.low, config), "taker")
    return None


def exit_fill(
    long: bool,
    stop: float,
    take_profit: float,
    bar: Bar,
    *,
    from_open: bool,
    due: bool,
    config: PaperConfig,
) -> tuple[ExitReason, Fill] | None:
    """How a position exits in ``bar``, if it does: stop first, then take-profit, then timeout.

    ``from_open`` is True when the position was held at the bar's open (opened
    in an earlier bar, or by a market order at this open): only then can a gap
    fill the stop at the open, and only then may the take-profit fill (a limit
    or stop entry filled inside this bar is stop-only). ``due`` is True on the
    bar the position times out: it exits at the close, slipped.
    """
    if (bar.low <= stop) if long else (bar.high >= stop):
        ref = (min(bar.open, stop) if long else max(bar.open, stop)) if from_open else stop
        return "stop", Fill(taker_price(ref, not long, bar.high - bar.low, config), "taker")
    touch = config.limit_touch_fills
    if from_open and (_above(bar, take_profit, touch) if long else _below(bar, take_profit, touch)):
        return "take_profit", Fill(take_profit, "maker")
    if due:
        price = taker_price(bar.close, not long, bar.high - bar.low, config)
        return "timeout", Fill(price, "taker")
    return None


def excursion(
    long: bool,
    entry: float,
    bar: Bar,
    *,
    favourable: bool,
    exit: tuple[ExitReason, float] | None = None,
) -> Excursion:
    """How far ``bar`` moved against and for a position entered at ``entry``, per unit.

    Worst case inside a bar: its adverse extreme always counts (it may have come
    after the fill); its favourable extreme only when ``favourable`` (False in
    the bar a limit or stop entry fills: the high may predate the fill). In the
    exit bar the price cannot run past the exit: a stop caps the adverse side
    at the exit and counts no favourable move (the stop came first), a
    take-profit caps the favourable side at the exit. The exit price itself
    always counts, so ``-adverse <= move to exit <= favourable``.
    """
    sign = 1.0 if long else -1.0
    worst = bar.low if long else bar.high
    best = bar.high if long else bar.low
    adverse = max(0.0, sign * (entry - worst))
    fav = max(0.0, sign * (best - entry)) if favourable else 0.0
    if exit is not None:
        reason, price = exit
        moved = sign * (price - entry)
        if reason == "stop":
            adverse, fav = max(0.0, -moved), 0.0
        elif reason == "take_profit":
            fav = max(0.0, moved)
        adverse, fav = max(adverse, -moved), max(fav, moved)
    return Excursion(adverse, fav)
