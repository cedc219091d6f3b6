"""The book over time: idempotency, reconciliation, snapshot/restore, deterministic ids."""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any

import numpy as np
import pytest
from paper_support import Step, at, bar, decision, market_script, of_type, play

from decile.events import BarBatch, Event, Fill, Order, TradeClosed
from decile.paper import Broker, PaperBroker, PaperConfig
from decile.paper.broker import order_deadline_ms, submission_bar_ms

CONFIG = PaperConfig(order_expiry_bars=4, timeout_bars=6)
N_BARS = 1_500
RISK = 100.0


@pytest.fixture(scope="module")
def script() -> list[Step]:
    return market_script(N_BARS)


@pytest.fixture(scope="module")
def run(script: list[Step]) -> tuple[PaperBroker, list[Event]]:
    broker = PaperBroker(CONFIG)
    return broker, play(broker, script)


def _json(snapshot: dict[str, Any]) -> dict[str, Any]:
    """Through JSON and back, as the execution service would persist it."""
    out: dict[str, Any] = json.loads(json.dumps(snapshot, allow_nan=False))
    return out


def test_paper_broker_implements_the_broker_protocol() -> None:
    broker: Broker = PaperBroker()
    assert broker.submit(decision(outcome="rejected")) == []


def test_a_second_submit_of_the_same_decision_returns_nothing_and_changes_nothing() -> None:
    broker = PaperBroker()
    d = decision()
    assert [type(e) for e in broker.submit(d)] == [Order, Fill]  # a market order, on arrival
    before = broker.snapshot()
    assert broker.submit(d) == []
    assert broker.submit(d.model_copy()) == []  # a redelivered copy, same id
    assert broker.snapshot() == before
    bar(broker, 1, 100.0, 101.0, 99.5, 100.5)
    assert broker.submit(d) == []  # nor once it is a position
    assert broker.ledger().open_positions == 1


def test_a_rejected_decision_is_ignored() -> None:
    broker = PaperBroker()
    before = broker.snapshot()
    assert broker.submit(decision(outcome="rejected")) == []
    assert broker.snapshot() == before


def test_a_redelivered_or_older_bar_is_ignored() -> None:
    broker = PaperBroker()
    broker.submit(decision())
    bar(broker, 1, 100.0, 101.0, 99.5, 100.5)
    before = broker.snapshot()
    assert bar(broker, 1, 100.0, 111.0, 90.0, 100.5) == []
    assert bar(broker, 0, 100.0, 111.0, 90.0, 100.5) == []
    assert broker.snapshot() == before


def test_a_decision_older_than_the_retention_is_refused_as_stale() -> None:
    broker = PaperBroker(PaperConfig(dedup_retention_bars=10, order_expiry_bars=2))
    for k in range(30):
        bar(broker, k, 100.0, 101.0, 99.0, 100.0)
    before = broker.snapshot()
    assert broker.submit(decision(bar=0)) == []
    assert broker.snapshot() == before
    assert len(broker.submit(decision(bar=25))) == 1


def test_admits_says_what_submit_would_act_on_without_changing_the_book() -> None:
    broker = PaperBroker(PaperConfig(dedup_retention_bars=10, order_expiry_bars=2))
    fresh, old = decision(bar=25), decision(bar=0)
    for k in range(30):
        bar(broker, k, 100.0, 101.0, 99.0, 100.0)
    before = broker.snapshot()
    assert broker.admits(fresh)
    assert not broker.admits(old)  # stale: submit refuses it too
    assert not broker.admits(decision(outcome="rejected"))
    assert broker.snapshot() == before
    assert len(broker.submit(fresh)) == 1
    assert not broker.admits(fresh)  # seen: a redelivery does nothing


def test_the_order_deadline_is_the_expiry_bars_or_the_intent_expiry_whichever_first() -> None:
    config = PaperConfig(order_expiry_bars=4)
    submitted = submission_bar_ms(decision(bar=3), config)
    assert order_deadline_ms(decision(bar=3), config) == submitted + 5 * config.tf_ms
    early = decision(bar=3, expires_at=at(5))
    assert order_deadline_ms(early, config) == int(at(5).timestamp() * 1000)


def test_remembered_decision_ids_stay_bounded(script: list[Step]) -> None:
    broker = PaperBroker(PaperConfig(dedup_retention_bars=20, order_expiry_bars=4))
    play(broker, script)
    decisions = sum(kind == "decision" for kind, _ in script)
    seen = broker.snapshot()["seen"]
    assert decisions > 300
    assert len(seen) < 60  # about 20 bars' worth of decisions


def test_long_random_run_reconciles_the_ledger(run: tuple[PaperBroker, list[Event]]) -> None:
    broker, events = run
    closed = of_type(events, TradeClosed)
    fills = of_type(events, Fill)
    led = broker.ledger()
    assert len(closed) > 100
    assert (led.open_orders, led.open_positions) == (0, 0)  # the quiet tail flattened it
    total = math.fsum(t.pnl for t in closed)
    start = CONFIG.starting_equity
    assert led.equity == pytest.approx(start + total, rel=1e-12, abs=1e-9)
    assert led.cash == led.equity
    assert led.realised_pnl == pytest.approx(total, rel=1e-12, abs=1e-9)
    assert led.fees == pytest.approx(math.fsum(f.fee for f in fills), rel=1e-12)
    assert math.fsum(t.fees for t in closed) == pytest.approx(led.fees, rel=1e-12)
    assert led.closed_trades == len(closed)
    assert Counter(t.exit_reason for t in closed).keys() == {"stop", "take_profit", "timeout"}


def test_every_order_ends_filled_or_expired_exactly_once(
    run: tuple[PaperBroker, list[Event]],
) -> None:
    _, events = run
    orders = of_type(events, Order)
    accepted = {o.decision_id for o in orders if o.status == "accepted"}
    expired = [o.decision_id for o in orders if o.status == "expired"]
    entries = [f.decision_id for f in of_type(events, Fill) if f.leg == "entry"]
    exits = [f.decision_id for f in of_type(events, Fill) if f.leg == "exit"]
    closed = [t.decision_id for t in of_type(events, TradeClosed)]
    assert len(expired) == len(set(expired))
    assert len(entries) == len(set(entries))
    assert set(expired) | set(entries) == accepted
    assert not set(expired) & set(entries)
    assert sorted(entries) == sorted(exits) == sorted(closed)
    assert len(expired) > 10
    assert len(entries) > 100


def test_no_fill_happens_on_or_before_the_submission_bar(
    script: list[Step], run: tuple[PaperBroker, list[Event]]
) -> None:
    _, events = run
    submitted = {
        d.id: submission_bar_ms(d, CONFIG)
        for kind, d in script
        if kind == "decision"
    }
    market = {d.id: d for kind, d in script if kind == "decision" and d.intent
              and d.intent.entry_type == "market"}
    fills = of_type(events, Fill)
    assert any(f.decision_id in market for f in fills)
    for f in fills:
        bar_ms = int(f.bar_time.timestamp() * 1000)
        if f.leg == "entry" and f.decision_id in market:  # on arrival: priced by that bar's close
            assert bar_ms == submitted[f.decision_id]
            assert f.ts_event == market[f.decision_id].ts_event
            assert f.price != market[f.decision_id].intent.entry_price  # slipped
        else:
            assert bar_ms > submitted[f.decision_id]


def test_every_trade_is_internally_consistent(run: tuple[PaperBroker, list[Event]]) -> None:
    _, events = run
    for t in of_type(events, TradeClosed):
        sign = 1.0 if t.side == "long" else -1.0
        gross = sign * (t.exit_price - t.entry_price) * t.quantity
        assert t.pnl == pytest.approx(gross - t.fees)
        assert t.realised_r == pytest.approx(t.pnl / RISK)  # the script risks 100 a trade
        assert t.mae_r <= 0.0 <= t.mfe_r
        assert t.mae_r - 1e-9 <= gross / RISK <= t.mfe_r + 1e-9
        assert 1 <= t.hold_bars <= CONFIG.timeout_bars
        assert t.exit_time >= t.entry_time


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_restore_then_continue_equals_an_uninterrupted_run(
    script: list[Step], run: tuple[PaperBroker, list[Event]], seed: int
) -> None:
    broker, events = run
    split = int(np.random.default_rng(seed).integers(1, len(script) - 1))
    first = PaperBroker(CONFIG)
    head = play(first, script[:split])
    snap = _json(first.snapshot())
    second = PaperBroker.restore(snap)
    assert second.snapshot() == first.snapshot()
    tail = play(second, script[split:])
    assert head + tail == events
    assert second.snapshot() == broker.snapshot()
    assert second.ledger() == broker.ledger()


def test_restore_mid_position_keeps_marks_excursions_and_the_clock() -> None:
    broker = PaperBroker()
    broker.submit(decision())
    bar(broker, 1, 100.0, 102.0, 99.0, 101.0)
    twin = PaperBroker.restore(_json(broker.snapshot()))
    assert twin.ledger() == broker.ledger()
    assert twin.clock_ms == broker.clock_ms
    assert bar(twin, 2, 101.0, 111.0, 100.5, 110.5) == bar(broker, 2, 101.0, 111.0, 100.5, 110.5)


def test_a_snapshot_with_decisions_as_objects_still_restores() -> None:
    # snapshots written before decisions were stored as JSON text held them as objects
    broker = PaperBroker()
    broker.submit(decision())
    broker.submit(decision(entry_type="limit", entry=99.0))
    snap = _json(broker.snapshot())
    for held in (*snap["orders"], *(p["ticket"] for p in snap["positions"])):
        held["decision"] = json.loads(held["decision"])
    twin = PaperBroker.restore(snap)
    assert twin.snapshot() == broker.snapshot()
    assert bar(twin, 1, 100.0, 101.0, 98.0, 100.5) == bar(broker, 1, 100.0, 101.0, 98.0, 100.5)


def test_restore_refuses_an_unknown_snapshot_version() -> None:
    snap = PaperBroker().snapshot() | {"version": 99}
    with pytest.raises(ValueError, match="version"):
        PaperBroker.restore(snap)


def test_a_rerun_gives_the_same_events_and_ids(
    script: list[Step], run: tuple[PaperBroker, list[Event]]
) -> None:
    _, events = run
    again = play(PaperBroker(CONFIG), script)
    assert [e.id for e in again] == [e.id for e in events]
    assert again == events
    ids = [e.id for e in events]
    assert len(ids) == len(set(ids))


def test_event_ids_derive_from_the_decision() -> None:
    d = decision()
    a, b = PaperBroker(), PaperBroker()
    events_a = a.submit(d) + bar(a, 1, 100.0, 111.0, 99.5, 110.5)
    events_b = b.submit(d) + bar(b, 1, 100.0, 111.0, 99.5, 110.5)
    assert [e.id for e in events_a] == [e.id for e in events_b]
    assert all(e.trace_id == d.trace_id for e in events_a)
    assert all(e.producer == "execution" for e in events_a)
    [order] = of_type(events_a, Order)
    assert {f.order_id for f in of_type(events_a, Fill)} == {order.id}


def test_on_batch_reads_a_bar_batch_of_the_brokers_timeframe() -> None:
    broker = PaperBroker(PaperConfig(market_entry="next_open"))
    broker.submit(decision())
    batch = BarBatch(
        tf="5m",
        bar_time=at(1),
        symbols=("BTC/USDT", "ETH/USDT"),
        values=np.array([[100.0, 101.0, 99.5, 100.5, 3.0], [50.0, 51.0, 49.0, 50.0, 1.0]]),
    )
    [fill] = broker.on_batch(batch)
    assert fill.price == pytest.approx(100.095)
    with pytest.raises(ValueError, match="1h"):
        broker.on_batch(batch.model_copy(update={"tf": "1h"}))
