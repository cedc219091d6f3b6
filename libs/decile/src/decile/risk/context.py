"""The trade proposal risk decides on: a confirmed candidate plus the decision time."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from decile.events.signals import ConfirmDecision, Side

_TF = re.compile(r"^([1-9][0-9]*)([mhdw])\Z")
_UNIT_S = {"m": 60, "h": 3_600, "d": 86_400, "w": 604_800}


def bar_seconds(tf: str) -> int:
    """Length of one bar of ``tf`` ("5m", "1h", "1d", "1w") in seconds."""
    m = _TF.match(tf)
    if m is None:
        raise ValueError(f"timeframe {tf!r} is not like 5m, 1h, 1d")
    return int(m.group(1)) * _UNIT_S[m.group(2)]


@dataclass(frozen=True, slots=True, kw_only=True)
class CandidateContext:
    """Everything the gates and the sizing read about one proposal.

    ``side`` is the side to trade (the confirm step may invert the candidate's);
    ``entry_price`` is the reference price the entry offset is measured from;
    ``fill_price_hint`` the confirm window's last close, when it had bars (see
    :attr:`market_price`);
    ``atr`` is in price units and ``sl_katr`` / ``offset_katr`` in ATRs; ``p_win``
    is the calibrated probability of +1R before -1R. ``now`` is the decision time,
    passed in: the domain never reads a clock.
    """

    symbol: str
    strategy: str
    side: Side
    tf: str
    bar_time: datetime
    entry_price: float
    atr: float
    p_win: float
    sl_katr: float
    rr_target: float
    offset_katr: float
    now: datetime
    fill_price_hint: float | None = None

    @property
    def market_price(self) -> float:
        """The last close the decision knew, where a market order enters: the confirm
        window's last bar, else the candidate's close."""
        return self.fill_price_hint or self.entry_price

    @classmethod
    def from_confirm(cls, confirm: ConfirmDecision, now: datetime) -> CandidateContext:
        """The proposal of an approved (or inverted) confirm decision.

        A veto never reaches risk (it travels on ``ml.vetoed``): getting one here is a
        routing bug, refused loudly rather than traded.
        """
        if confirm.decision == "veto":
            raise ValueError(f"confirm decision {confirm.id} is a veto: nothing to risk-check")
        c = confirm.candidate
        return cls(
            symbol=c.symbol,
            strategy=c.strategy,
            side=confirm.side,
            tf=c.tf,
            bar_time=c.bar_time,
            entry_price=c.entry_price,
            atr=c.atr,
            p_win=c.p_win,
            sl_katr=c.sl_katr,
            rr_target=c.rr_target,
            offset_katr=c.offset_katr,
            now=now,
            fill_price_hint=confirm.fill_price_hint,
        )

    @property
    def bar(self) -> timedelta:
        return timedelta(seconds=bar_seconds(self.tf))

    @property
    def stop_distance(self) -> float:
        """Entry to stop in price units: one R per unit of quantity."""
        return self.sl_katr * self.atr
