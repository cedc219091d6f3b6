"""Builders for the paper-broker tests: decisions stating only what a test is about, bars, scripts.

A *script* is a fixed list of steps (a bar cross-section or a decision) built
from the synthetic market, so the same inputs can drive several brokers: one
uninterrupted, one restored from a snapshot halfway, one re-run.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from decile import ids
from decile.events import (
    CandidateSignal,
    ConfirmDecision,
    Event,
    OrderIntent,
    Rejection,
    RiskDecision,
)
from decile.market.generator import MarketGenerator
from decile.paper import PaperBroker
from decile.reasons import ReasonCode

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
TF = timedelta(minutes=5)
SYMBOL = "BTC/USDT"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
MODEL_VERSIONS = {"entry": "e-2024.03.01", "risk": "r-2024.02.20"}

Step = tuple[str, Any]


def at(k: int) -> datetime:
    """Open time of the ``k``-th bar after :data:`T0`."""
    return T0 + k * TF


def decision(
    *,
    symbol: str = SYMBOL,
    side: str = "long",
    entry_type: str = "market",
    entry: float = 100.0,
    stop: float = 95.0,
    take_profit: float = 110.0,
    quantity: float = 2.0,
    risk_amount: float | None = None,
    bar: int | datetime = 0,
    decided_at: datetime | None = None,
    expires_at: datetime | None = None,
    outcome: str = "approved",
    key: object = None,
) -> RiskDecision:
    """A decision on the close of bar ``bar`` (an index from :data:`T0`, or a time).

    Ids are stable per ``key``, so two calls with the same arguments give the same decision.

    ``risk_amount`` defaults to ``quantity * |entry - stop|`` (1R = the stop
    distance); ``decided_at`` to the bar's close; ``expires_at`` far away, so the
    broker's ``order_expiry_bars`` decides.
    """
    bar_time = bar if isinstance(bar, datetime) else at(bar)
    ms = int(bar_time.timestamp() * 1000)
    key = key if key is not None else (symbol, side, entry_type, entry, bar)
    cand = CandidateSignal(
        id=ids.stable_id(ms, "candidate", key),
        trace_id=TRACE_ID,
        ts_event=bar_time + TF,
        symbol=symbol,
        tf="5m",
        bar_time=bar_time,
        strategy="breakout",
        side=side,
        entry_price=entry,
        atr=abs(entry - stop),
        p_win=0.57,
        sl_katr=1.0,
        rr_target=2.0,
        offset_katr=0.0,
        score=0.8,
        rank=1,
        cycle_size=10,
        cycle_threshold=0.7,
        score_floor=0.6,
        model_versions=MODEL_VERSIONS,
        feature_schema="fs-v1",
        producer="inference",
    )
    decided = decided_at or bar_time + TF
    conf = cand.follow(
        ConfirmDecision,
        ts_event=decided,
        candidate=cand,
        decision="approve",
        side=side,
        decided_at=decided,
        producer="confirm",
    )
    fields: dict[str, Any] = {"ts_event": decided, "producer": "risk", "outcome": outcome}
    if outcome == "approved":
        fields["intent"] = OrderIntent(
            symbol=symbol,
            side=side,
            quantity=quantity,
            entry_type=entry_type,
            entry_price=entry,
            stop_price=stop,
            take_profit=take_profit,
            expires_at=expires_at or bar_time + 1000 * TF,
            risk_amount=risk_amount or quantity * abs(entry - stop),
        )
    else:
        fields["rejection"] = Rejection(gate="daily_loss", code=ReasonCode.DAILY_LOSS_LIMIT)
    return conf.follow(RiskDecision, confirm=conf, **fields)


def bar(
    broker: PaperBroker,
    k: int,
    o: float,
    h: float,
    lo: float,
    c: float,
    symbol: str = SYMBOL,
) -> list[Event]:
    """Feed one symbol's bar ``k`` (others absent) and return the events."""
    return broker.on_bars(at(k), (symbol,), np.array([[o, h, lo, c, 1.0]]))


def of_type(events: Iterable[Event], cls: type[Event]) -> list[Any]:
    return [e for e in events if isinstance(e, cls)]


def market_script(
    n_bars: int, *, n_symbols: int = 12, seed: int = 7, p_decision: float = 0.35, tail: int = 20
) -> list[Step]:
    """Bars of a synthetic market with random decisions after some bars, then quiet bars.

    Decisions mix sides and entry types; prices sit around the last close with
    a stop one to three bar ranges away and a take-profit at 1-3R, sized to
    risk 100 quote units. ``tail`` bars without decisions let every order
    expire and every position time out, so the book ends flat.
    """
    gen = MarketGenerator(n_symbols=n_symbols, seed=seed)
    rng = np.random.default_rng(seed + 1)
    steps: list[Step] = []
    for i in range(n_bars + tail):
        cycle = gen.step()
        ts = int(cycle.ts[0])
        when = datetime.fromtimestamp(ts / 1000, UTC)
        steps.append(("bars", (when, cycle.symbols, cycle.ohlcv())))
        if i >= n_bars:
            continue
        for row in np.flatnonzero(rng.random(n_symbols) < p_decision / n_symbols * 3):
            close = float(cycle.close[row])
            span = float(cycle.high[row] - cycle.low[row]) or close * 1e-3
            long = bool(rng.random() < 0.5)
            sign = 1.0 if long else -1.0
            entry_type = str(rng.choice(["market", "limit", "stop"]))
            offset = float(rng.uniform(0.1, 1.0)) * span
            entry = {"market": close, "limit": close - sign * offset, "stop": close + sign * offset}
            distance = float(rng.uniform(1.0, 3.0)) * span
            px = entry[entry_type]
            steps.append(
                (
                    "decision",
                    decision(
                        bar=when,
                        symbol=cycle.symbols[row],
                        side="long" if long else "short",
                        entry_type=entry_type,
                        entry=px,
                        stop=px - sign * distance,
                        take_profit=px + sign * distance * float(rng.uniform(1.0, 3.0)),
                        quantity=100.0 / distance,
                        key=(i, row),
                    ),
                )
            )
    return steps


def play(broker: PaperBroker, steps: Iterable[Step]) -> list[Event]:
    """Run ``steps`` through ``broker``; every event, in order."""
    out: list[Event] = []
    for kind, payload in steps:
        if kind == "bars":
            out += broker.on_bars(*payload)
        else:
            out += broker.submit(payload)
    return out
