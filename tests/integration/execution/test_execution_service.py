"""The execution service as a real process on real NATS JetStream and PostgreSQL.

The test plays risk and ingest: it publishes approved RiskDecisions and bar
cross-sections built by hand (fixed, historical bar times, so every run gives
the same events), flips kill switches in the real bucket, kills the service
with SIGKILL, and reads back the EXEC stream and the ``execution_state`` row.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from subprocess import Popen
from typing import Any

import asyncpg
import numpy as np
import pytest
from nats.js import api as js_api

from decile import codec, ids
from decile.bus import Bus
from decile.events import (
    BarBatch,
    CandidateSignal,
    ConfirmDecision,
    Event,
    Fill,
    Order,
    OrderIntent,
    RiskDecision,
    TradeClosed,
)
from decile.killswitch import KillSwitches
from decile.paper import PaperConfig, costs
from decile.testing.plugin import delete_streams, unique_id
from decile.testing.probes import (
    eventually,
    free_port,
    http_get,
    metric_value,
    metrics_when,
    output,
    provisioned_bus,
    service_process,
    stream_messages,
    wait_ready,
)

TF = "5m"
BAR = timedelta(minutes=5)
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
SYMBOL = "BTC/USDT"
ENTRY, STOP, TAKE_PROFIT, QTY = 100.0, 95.0, 110.0, 2.0
# bars 1..3 after a decision on bar 0: market entry at bar 1's open, bar 2 holds, bar 3
# trades through the take-profit
PATH = {
    1: (100.0, 101.0, 99.5, 100.5),
    2: (100.5, 102.0, 99.0, 101.0),
    3: (101.0, 111.0, 100.5, 109.0),
}


def at(k: int) -> datetime:
    return T0 + k * BAR


def decision(k: int = 0, symbol: str = SYMBOL, key: str = "a") -> RiskDecision:
    """An approved long market order decided on the close of bar ``k``; stable ids per key."""
    bar_time = at(k)
    cand = CandidateSignal(
        id=ids.stable_id(int(bar_time.timestamp() * 1000), "candidate", symbol, key),
        trace_id="0af7651916cd43dd8448eb211c80319c", ts_event=bar_time + BAR, symbol=symbol,
        tf=TF, bar_time=bar_time, strategy="breakout", side="long", entry_price=ENTRY, atr=5.0,
        p_win=0.57, sl_katr=1.0, rr_target=2.0, offset_katr=0.0, score=0.83, rank=1,
        cycle_size=120, cycle_threshold=0.74, score_floor=0.6, model_versions={"entry": "1.0.0"},
        feature_schema="fs-v1", producer="inference",
    )
    decided = bar_time + BAR
    conf = cand.follow(ConfirmDecision, ts_event=decided, candidate=cand, decision="approve",
                       side="long", p_confirm=0.64, decided_at=decided, producer="confirm")
    intent = OrderIntent(symbol=symbol, side="long", quantity=QTY, entry_type="market",
                         entry_price=ENTRY, stop_price=STOP, take_profit=TAKE_PROFIT,
                         expires_at=bar_time + 100 * BAR, risk_amount=QTY * (ENTRY - STOP))
    return conf.follow(RiskDecision, ts_event=decided, confirm=conf, outcome="approved",
                       intent=intent, producer="risk")


def bars(k: int, symbols: tuple[str, ...] = (SYMBOL, "ETH/USDT")) -> BarBatch:
    o, h, lo, c = PATH.get(k, (100.0, 101.0, 99.0, 100.0))
    rows = [[o, h, lo, c, 10.0]] * len(symbols)
    return BarBatch(tf=TF, bar_time=at(k), symbols=symbols, values=np.array(rows),
                    producer="ingest")


async def exec_events(bus: Bus) -> list[Event]:
    out = []
    for msg in await stream_messages(bus.js, bus.subjects.stream("EXEC")):
        assert msg.data is not None
        event = codec.decode(msg.data, dict(msg.headers or {}))
        assert (msg.headers or {}).get(codec.H_MSG_ID) == event.id
        out.append(event)
    return out


async def wait_events(bus: Bus, want: Any, within: float = 30.0) -> list[Event]:
    """EXEC events once ``want(events)`` holds (the last read when it never does)."""

    async def check() -> list[Event] | None:
        events = await exec_events(bus)
        return events if want(events) else None

    return await eventually(check, within=within) or await exec_events(bus)  # type: ignore[no-any-return]


def closed(events: list[Event]) -> bool:
    return any(isinstance(e, TradeClosed) for e in events)


def count(n: int) -> Any:
    return lambda events: len(events) >= n


async def handled(bus: Bus, stream: str, durable: str, seq: int, within: float = 30.0) -> None:
    """Wait until ``durable`` acked the message at stream sequence ``seq``."""

    async def acked() -> bool:
        info = await bus.js.consumer_info(bus.subjects.stream(stream), durable)
        return bool(info.ack_floor and (info.ack_floor.stream_seq or 0) >= seq)

    assert await eventually(acked, within=within), f"{durable} never acked seq {seq}"


async def republish(bus: Bus, event: Event) -> js_api.PubAck:
    """The same event under a new message id: the stream's dedup cannot drop it."""
    body, headers = codec.encode(event)
    subject = bus.subjects.risk_approved(SYMBOL) if isinstance(event, RiskDecision) else (
        bus.subjects.md_bars(TF))
    return await bus.js.publish(subject, body, headers={**headers, codec.H_MSG_ID: ids.new_id()})


async def state_row(dsn: str, account: str = "paper") -> asyncpg.Record | None:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchrow(
            "SELECT snapshot::text AS snapshot, exec_seq FROM execution_state WHERE account = $1",
            account)
    finally:
        await conn.close()


async def put_state_row(dsn: str, row: asyncpg.Record, account: str = "paper") -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "UPDATE execution_state SET snapshot = $2::jsonb, exec_seq = $3 WHERE account = $1",
            account, row["snapshot"], row["exec_seq"])
    finally:
        await conn.close()


@pytest.fixture
def exec_env(decile_env: dict[str, str]) -> dict[str, str]:
    return {**decile_env, "DECILE_SERVICE": "execution", "DECILE_EXECUTION__TF": TF}


@contextlib.contextmanager
def execution_service(env: dict[str, str], port: int) -> Iterator[Popen[bytes]]:
    with service_process("decile_execution", env, port) as proc:
        try:
            wait_ready(port, proc)
            yield proc
        except BaseException:
            print(output(proc)[-5000:])
            raise


async def metrics_text(port: int) -> str:
    return (await asyncio.to_thread(http_get, port, "/metrics"))[1]


async def test_an_approved_decision_trades_through_entry_and_take_profit_and_reconciles(
    bus: Bus, pg_dsn: str, exec_env: dict[str, str]
) -> None:
    port = free_port()
    d = decision()
    with execution_service(exec_env, port) as proc:
        await bus.publish(d)
        events = await wait_events(bus, count(2))  # a market order fills on arrival
        assert [type(e) for e in events] == [Order, Fill], output(proc)[-3000:]
        await bus.publish_many([bars(k) for k in (1, 2, 3)])
        events = await wait_events(bus, closed)
        text = await metrics_when(port, "decile_execution_trades_closed_total", 1,
                                  reason="take_profit")

    order, entry, exit_, trade = events
    assert isinstance(order, Order)
    assert order.status == "accepted"
    assert order.id == ids.derive(d.id, "Order", "accepted")
    assert (order.decision_id, order.symbol, order.quantity) == (d.id, SYMBOL, QTY)
    assert isinstance(entry, Fill)
    assert isinstance(exit_, Fill)
    assert (entry.leg, entry.liquidity, entry.bar_time) == ("entry", "taker", at(0))
    assert (exit_.leg, exit_.liquidity, exit_.bar_time) == ("exit", "maker", at(3))
    assert entry.order_id == exit_.order_id == order.id

    cfg = PaperConfig()
    entry_px = costs.taker_price(ENTRY, True, 5.0, cfg)  # bar 0's close, slipped by the ATR
    entry_fee = costs.fee(entry_px, QTY, "taker", cfg)
    exit_fee = costs.fee(TAKE_PROFIT, QTY, "maker", cfg)
    pnl = (TAKE_PROFIT - entry_px) * QTY - entry_fee - exit_fee
    assert entry.price == pytest.approx(entry_px)
    assert (entry.fee, exit_.price, exit_.fee) == pytest.approx((entry_fee, TAKE_PROFIT, exit_fee))
    assert isinstance(trade, TradeClosed)
    assert trade.exit_reason == "take_profit"
    assert trade.pnl == pytest.approx(pnl)
    assert trade.fees == pytest.approx(entry_fee + exit_fee)
    assert trade.realised_r == pytest.approx(pnl / (QTY * (ENTRY - STOP)))
    assert (trade.hold_bars, trade.entry_time, trade.exit_time) == (3, at(1), at(3))

    # the ledger reconciles: flat book, equity = start + the closed trade's pnl
    assert metric_value(text, "decile_execution_equity") == pytest.approx(10_000.0 + pnl)
    assert metric_value(text, "decile_execution_realised_pnl") == pytest.approx(pnl)
    assert metric_value(text, "decile_execution_unrealised_pnl") == 0.0
    assert metric_value(text, "decile_execution_open_positions") == 0.0
    assert metric_value(text, "decile_execution_orders_total", status="accepted") == 1
    assert metric_value(text, "decile_execution_fills_total", leg="entry", liquidity="taker") == 1
    assert metric_value(text, "decile_execution_fills_total", leg="exit", liquidity="maker") == 1
    assert metric_value(text, "decile_execution_trades_closed_total", reason="take_profit") == 1
    row = await state_row(pg_dsn)
    assert row is not None
    snap = json.loads(row["snapshot"])["broker"]
    assert (snap["orders"], snap["positions"], snap["closed_trades"]) == ([], [], 1)
    assert snap["cash"] == pytest.approx(10_000.0 + pnl)
    assert row["exec_seq"] == 4  # the EXEC sequence of the last event published


async def test_a_decision_delivered_again_and_after_a_restart_gives_one_order(
    bus: Bus, exec_env: dict[str, str]
) -> None:
    port = free_port()
    d = decision()
    with execution_service(exec_env, port):
        await bus.publish(d)
        await wait_events(bus, count(1))
        await bus.publish(d)  # same Nats-Msg-Id: the RISK stream drops it
        ack = await republish(bus, d)  # a new message id: the service sees it
        await handled(bus, "RISK", "execution-approved", ack.seq)
        text = await metrics_text(port)
        assert metric_value(text, "decile_execution_orders_total") == 1
    with execution_service(exec_env, port):
        ack = await republish(bus, d)
        await handled(bus, "RISK", "execution-approved", ack.seq)
        await bus.publish(bars(1))  # the restored order fills; once
        events = await wait_events(bus, count(2))
        text = await metrics_text(port)
        assert metric_value(text, "decile_execution_orders_total") == 0  # none in this process
    assert [(type(e).__name__, getattr(e, "status", None) or getattr(e, "leg", None))
            for e in events] == [("Order", "accepted"), ("Fill", "entry")]
    assert all(e.decision_id == d.id for e in events)  # type: ignore[attr-defined]
    assert len(await exec_events(bus)) == 2


async def run_sequence(bus: Bus, env: dict[str, str], *, crash: bool) -> list[Event]:
    """Decision, entry bar, then the rest. With ``crash`` the service is SIGKILLed right
    after the second bar is published (wherever it is in handling it) and started again."""
    port = free_port()
    with contextlib.ExitStack() as stack:
        proc = stack.enter_context(execution_service(env, port))
        await bus.publish(decision())
        await wait_events(bus, count(1))
        await bus.publish(bars(1))
        await wait_events(bus, count(2))  # the entry fill
        await bus.publish(bars(2))
        if crash:
            proc.kill()
            proc.wait()
            proc = stack.enter_context(execution_service(env, port))
        await bus.publish_many([bars(k) for k in range(3, 8)])
        await wait_events(bus, closed)
        # bars after the close find a flat book: wait until they are handled too
        last = (await bus.js.stream_info(bus.subjects.stream("MD"))).state.last_seq
        await handled(bus, "MD", "execution-bars-5m", last)
        assert proc.poll() is None
    return await exec_events(bus)


async def test_a_service_killed_mid_trade_publishes_what_an_uninterrupted_one_does(
    bus: Bus, nats_url: str, exec_env: dict[str, str]
) -> None:
    steady = await run_sequence(bus, {**exec_env, "DECILE_EXECUTION__ACCOUNT": "steady"},
                                crash=False)
    other = unique_id()
    try:
        async with provisioned_bus(nats_url, other) as crash_bus:
            env = {**exec_env, "DECILE_NATS__NAMESPACE": other,
                   "DECILE_EXECUTION__ACCOUNT": "crashed"}
            crashed = await run_sequence(crash_bus, env, crash=True)
    finally:
        await delete_streams(nats_url, other)
    assert [type(e).__name__ for e in steady] == ["Order", "Fill", "Fill", "TradeClosed"]
    assert crashed == steady  # same events, same ids, same order, nothing twice


async def saved_positions(dsn: str) -> dict[str, int]:
    row = await state_row(dsn)
    return {} if row is None else dict(json.loads(row["snapshot"])["inputs"])


async def test_a_restart_from_an_older_snapshot_replays_the_streams_and_republishes_nothing(
    bus: Bus, pg_dsn: str, exec_env: dict[str, str]
) -> None:
    """A crash before the snapshot caught up, made on purpose: the row is put back to
    before bars 2 and 3. At start the service takes them again from MD, in the order
    the dead process did; the events it re-emits are found on EXEC and not sent twice,
    and the state it saves is the one the first process ended with."""
    port = free_port()
    with execution_service(exec_env, port):
        await bus.publish(decision())
        await wait_events(bus, count(1))
        bar1 = await bus.publish(bars(1))
        await wait_events(bus, count(2))

        async def bar1_saved() -> bool:
            return (await saved_positions(pg_dsn)).get("md") == bar1.seq

        assert await eventually(bar1_saved), "the writer never saved the entry bar"
        older = await state_row(pg_dsn)
        await bus.publish_many([bars(2), bars(3)])
        before = await wait_events(bus, closed)
    assert older is not None
    done = await state_row(pg_dsn)
    await put_state_row(pg_dsn, older)
    with execution_service(exec_env, port):
        text = await metrics_text(port)  # ready: recovered
    assert metric_value(text, "decile_execution_replayed_inputs_total", source="md") == 2
    assert metric_value(text, "decile_execution_already_published_total") == 2  # exit, closed
    assert await exec_events(bus) == before
    assert await state_row(pg_dsn) == done


async def test_a_master_kill_cancels_new_decisions_and_clearing_it_trades_again(
    bus: Bus, nats_namespace: str, exec_env: dict[str, str]
) -> None:
    port = free_port()
    switches = await KillSwitches.open(bus.js, nats_namespace)
    killed, later = decision(0, key="killed"), decision(1, key="later")
    with execution_service(exec_env, port):
        assert metric_value(await metrics_text(port), "decile_execution_halted") == 0
        await switches.set("master", on=True, reason="integration test halt", by="test")

        async def halted() -> bool:
            return metric_value(await metrics_text(port), "decile_execution_halted") == 1

        assert await eventually(halted), "the service never saw the master kill"
        await bus.publish(killed)
        events = await wait_events(bus, count(1))
        assert [(type(e).__name__, getattr(e, "status", None)) for e in events] == [
            ("Order", "cancelled")]
        assert events[0].id == ids.derive(killed.id, "Order", "cancelled")
        text = await metrics_text(port)
        assert metric_value(text, "decile_execution_kill_cancelled_total", scope="master") == 1
        assert metric_value(text, "decile_execution_orders_total", status="cancelled") == 1

        await switches.set("master", on=False, by="test")

        async def cleared() -> bool:
            return metric_value(await metrics_text(port), "decile_execution_halted") == 0

        assert await eventually(cleared)
        ack = await republish(bus, killed)  # cancelled stays cancelled once the kill is off
        await handled(bus, "RISK", "execution-approved", ack.seq)
        await bus.publish(later)
        await wait_events(bus, count(2))
        await bus.publish(bars(2))  # fills the later order; the cancelled one is not in the book
        events = await wait_events(bus, count(3))
    summary = [(type(e).__name__, e.decision_id, getattr(e, "status", None))  # type: ignore[attr-defined]
               for e in events]
    assert summary == [
        ("Order", killed.id, "cancelled"),
        ("Order", later.id, "accepted"),
        ("Fill", later.id, None),
    ]
