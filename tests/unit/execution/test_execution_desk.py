"""The desk: kill cancellations remembered and made durable first, bars idempotent, snapshots."""

from __future__ import annotations

import json
from types import MappingProxyType

import pytest

from decile import ids
from decile.events import Fill, Order
from decile.paper import PaperBroker, PaperConfig
from decile.risk import KillState
from decile_execution.desk import Desk, kill_scope
from tests.unit.execution.execution_support import FIRST_FILL_BAR, bars, decision

OPEN = KillState()
MASTER = KillState(master=True, reasons=MappingProxyType({"master": "test"}))


def test_kill_scope_names_the_switch_that_covers_the_decision() -> None:
    d = decision()
    assert kill_scope(d, OPEN) is None
    assert kill_scope(d, KillState.unknown()) == "master"
    assert kill_scope(d, KillState(auto=frozenset({"drawdown"}))) == "auto"
    assert kill_scope(d, KillState(symbols=frozenset({"BTC/USDT"}))) == "symbol"
    assert kill_scope(d, KillState(symbols=frozenset({"ETH/USDT"}))) is None
    assert kill_scope(d, KillState(strategies=frozenset({"breakout"}))) == "strategy"


def test_a_decision_under_a_kill_is_cancelled_write_ahead_and_stays_cancelled() -> None:
    desk, d = Desk(PaperBroker()), decision()
    step = desk.decide(d, MASTER)
    assert (step.changed, step.write_ahead, step.killed) == (True, True, "master")
    [order] = step.events
    assert isinstance(order, Order)
    assert (order.status, order.decision_id) == ("cancelled", d.id)
    assert order.id == ids.derive(d.id, "Order", "cancelled")
    assert desk.broker.open_orders == ()
    again = desk.decide(d, OPEN)  # redelivered once the switch is off: the same Order
    assert (again.events, again.changed, again.write_ahead) == ([order], False, False)
    assert desk.broker.open_orders == ()


def test_a_decision_the_book_already_took_is_left_alone_by_a_later_kill() -> None:
    desk, d = Desk(PaperBroker()), decision()
    assert [e.status for e in desk.decide(d, OPEN).events] == ["accepted"]  # type: ignore[attr-defined]
    step = desk.decide(d, MASTER)
    assert (step.events, step.changed, step.killed) == ([], False, None)
    assert len(desk.broker.open_orders) == 1


def test_open_positions_keep_being_managed_under_a_kill() -> None:
    desk, d = Desk(PaperBroker()), decision()
    desk.decide(d, OPEN)
    fills = desk.bars(bars(FIRST_FILL_BAR)).events
    assert [type(e) for e in fills] == [Fill]
    desk.decide(decision(), MASTER)  # the kill stops new orders only
    out = desk.bars(bars(FIRST_FILL_BAR + 1, (62_250.0, 63_600.0, 62_200.0, 63_500.0))).events
    assert [type(e).__name__ for e in out] == ["Fill", "TradeClosed"]


def test_a_bar_not_after_the_clock_changes_nothing() -> None:
    desk = Desk(PaperBroker())
    assert desk.bars(bars(1)).changed  # no events, but the clock moved
    before = desk.snapshot()
    step = desk.bars(bars(1))
    assert (step.events, step.changed) == ([], False)
    assert desk.bars(bars(0)).changed is False
    assert desk.snapshot() == before


def test_a_snapshot_through_json_continues_like_the_original() -> None:
    a = Desk(PaperBroker())
    a.decide(decision(), OPEN)
    a.decide(decision(), MASTER)
    a.bars(bars(FIRST_FILL_BAR))
    b = Desk.restore(json.loads(json.dumps(a.snapshot())), a.config)
    assert b.snapshot() == a.snapshot()
    assert b.cancelled == a.cancelled
    nxt = bars(FIRST_FILL_BAR + 1, (62_250.0, 63_600.0, 62_200.0, 63_500.0))
    assert b.bars(nxt).events == a.bars(nxt).events


def test_restore_refuses_another_timeframe() -> None:
    doc = Desk(PaperBroker()).snapshot()
    with pytest.raises(ValueError, match="5m bars"):
        Desk.restore(doc, PaperConfig(tf="1h"))  # type: ignore[arg-type]


def test_cancellations_are_forgotten_after_the_retention() -> None:
    desk = Desk(PaperBroker(PaperConfig(dedup_retention_bars=2, order_expiry_bars=1)))
    desk.decide(decision(), MASTER)
    assert len(desk.cancelled) == 1
    for k in range(1, 12):
        desk.bars(bars(k))
    assert desk.cancelled == {}
