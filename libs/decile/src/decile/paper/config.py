"""Paper-broker settings: costs, order life and the trade horizon.

Costs default to a little worse than a Binance-spot-like venue so that paper
results err on the pessimistic side: a strategy that only wins on paper with
generous fills is the failure this library exists to expose.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from decile.market.timeframes import Timeframe, parse

__all__ = ["MarketEntry", "PaperConfig"]

MarketEntry = Literal["arrival", "next_open"]


@dataclass(frozen=True, slots=True)
class PaperConfig:
    """How the paper broker fills, charges and times out; frozen and checked at build.

    Defaults:

    * ``tf`` ``"5m"``: the timeframe of the bar feed ``on_bars`` receives; bar
      arithmetic (submission bar, expiry, timeout, hold) uses it.
    * ``maker_fee_bps`` 2.0: fee on limit entries and take-profit exits, bps of notional.
    * ``taker_fee_bps`` 5.0: fee on market and stop entries, stop and timeout exits.
    * ``slippage_bps`` 2.0 plus ``slippage_range_fraction`` 0.05 of the fill bar's
      ``high - low``: added against the trader to every taker fill (buys higher,
      sells lower); maker fills get none. Never clamped to the bar's range (a
      stop touching the low still slips), but at most
      ``max_slippage_fraction`` 0.5 of the price so a degenerate bar cannot give
      a price <= 0.
    * ``market_entry`` ``"arrival"``: a market order fills as it arrives, at its
      reference price (the last close the decision knew) slipped by bps plus the
      range fraction of the candidate's ATR, as a live venue fills it; the first
      bar after the submission bar is its first bar of exposure. A market order
      arriving after the broker already processed a later bar (a late delivery)
      fills at the next bar's open instead, and so does every market order with
      ``"next_open"`` (a backtest that never trades at a price the decision saw).
    * ``limit_touch_fills`` False: a limit (entry or take-profit) fills only when
      the bar trades *through* its price; a touch is not a fill (queue position
      unknown). Stops always trigger on a touch.
    * ``order_expiry_bars`` 6: an unfilled order lives at most this many bars after
      its submission bar (the intent's ``expires_at`` may cut it shorter); 6 is the
      label horizon, over which the training label lets an offset entry fill.
    * ``timeout_bars`` 6: a position still open after this many bars of exposure
      (the entry bar counts) exits at that bar's close; the label horizon ``H``.
    * ``starting_equity`` 10,000.0 in quote currency.
    * ``dedup_retention_bars`` 2,016 (a week of 5m bars): decision ids are
      remembered this long after their order's deadline; an approved decision
      whose deadline is older than that is refused as stale, so the memory of
      ids stays bounded and a replayed old decision still does nothing.
    """

    tf: Timeframe = Timeframe.M5
    maker_fee_bps: float = 2.0
    taker_fee_bps: float = 5.0
    slippage_bps: float = 2.0
    slippage_range_fraction: float = 0.05
    max_slippage_fraction: float = 0.5
    market_entry: MarketEntry = "arrival"
    limit_touch_fills: bool = False
    order_expiry_bars: int = 6
    timeout_bars: int = 6
    starting_equity: float = 10_000.0
    dedup_retention_bars: int = 2_016

    def __post_init__(self) -> None:
        object.__setattr__(self, "tf", parse(self.tf))
        for name in ("maker_fee_bps", "taker_fee_bps", "slippage_bps"):
            if not 0.0 <= getattr(self, name) < 10_000.0:
                raise ValueError(f"{name} must be in [0, 10000) bps")
        if not 0.0 <= self.slippage_range_fraction <= 1.0:
            raise ValueError("slippage_range_fraction must be in [0, 1]")
        if not 0.0 <= self.max_slippage_fraction < 1.0:
            raise ValueError("max_slippage_fraction must be in [0, 1)")
        if self.market_entry not in ("arrival", "next_open"):
            raise ValueError("market_entry must be 'arrival' or 'next_open'")
        for name in ("order_expiry_bars", "timeout_bars", "dedup_retention_bars"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 bar")
        if not self.starting_equity > 0.0:
            raise ValueError("starting_equity must be > 0")

    @property
    def tf_ms(self) -> int:
        """One bar in milliseconds."""
        return self.tf.ms

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able fields (``tf`` as its name), the inverse of ``PaperConfig(**d)``."""
        out = asdict(self)
        out["tf"] = self.tf.value
        return out
