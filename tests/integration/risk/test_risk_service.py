"""The risk service as a real process on real NATS JetStream and PostgreSQL.

The test plays the upstream services: it publishes bar cross-sections, a model
activation and confirm decisions built by hand, flips kill switches in the real
bucket, and reads back what the service published on the RISK stream and wrote
to the ``risk_decisions`` audit table.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from subprocess import Popen

import asyncpg
import numpy as np
import pytest

from decile import codec, ids
from decile.bus import Bus
from decile.events import (
    BarBatch,
    CandidateSignal,
    ConfirmDecision,
    ModelActivated,
    Rejection,
    RiskDecision,
    TradeClosed,
)
from decile.killswitch import KillSwitches
from decile.reasons import ReasonCode
from decile.testing.probes import (
    eventually,
    free_port,
    http_get,
    last_closed_bar,
    metric_value,
    metrics_when,
    output,
    service_process,
    stream_messages,
    wait_ready,
)

TF = "5m"
BAR = timedelta(minutes=5)


def bars(symbols: tuple[str, ...], bar_time: datetime) -> BarBatch:
    row = [100.0, 101.0, 99.0, 100.5, 10.0]
    return BarBatch(tf=TF, bar_time=bar_time, symbols=symbols,
                    values=np.array([row] * len(symbols)), producer="ingest")


def confirmed(symbol: str = "BTC/USDT", decision: str = "approve") -> ConfirmDecision:
    bar_time = last_closed_bar(datetime.now(UTC))
    cand = CandidateSignal(
        symbol=symbol, tf=TF, bar_time=bar_time, strategy="breakout", side="long",
        entry_price=100.5, atr=1.2, p_win=0.57, sl_katr=1.5, rr_target=2.0, offset_katr=0.0,
        score=0.83, rank=1, cycle_size=120, cycle_threshold=0.74, score_floor=0.6,
        model_versions={"entry": "1.0.0"}, feature_schema="fs-v1", producer="inference",
    )
    return ConfirmDecision(
        trace_id=cand.trace_id, candidate=cand, decision=decision,  # type: ignore[arg-type]
        side="long", p_confirm=0.64, decided_at=datetime.now(UTC), producer="confirm",
    )


async def risk_decisions(bus: Bus) -> list[RiskDecision]:
    out = []
    for msg in await stream_messages(bus.js, bus.subjects.stream("RISK")):
        if (msg.headers or {}).get(codec.H_TYPE) == "RiskDecision" and msg.data is not None:
            event = codec.decode(msg.data, dict(msg.headers or {}), expect=RiskDecision)
            assert isinstance(event, RiskDecision)
            out.append(event)
    return out


async def decision_for(bus: Bus, confirm: ConfirmDecision, within: float = 20.0) -> RiskDecision:
    async def found() -> RiskDecision | None:
        return next((d for d in await risk_decisions(bus) if d.confirm.id == confirm.id), None)

    decision = await eventually(found, within=within, interval=0.1)
    assert decision is not None, f"no RiskDecision for confirm {confirm.id}"
    return decision  # type: ignore[no-any-return]


async def audit_rows(dsn: str, confirm_id: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(
            'SELECT decision_id, outcome, gate, code, "values", checked, intent '
            "FROM risk_decisions WHERE confirm_id = $1", confirm_id))
    finally:
        await conn.close()


async def written_rows(dsn: str, confirm_id: str) -> list[asyncpg.Record]:
    """The audit rows of a decision already published: the writer records them behind it."""
    async def rows() -> list[asyncpg.Record] | None:
        return await audit_rows(dsn, confirm_id) or None

    found = await eventually(rows, within=10, interval=0.05)
    assert found, f"no audit row for confirm {confirm_id}"
    return found  # type: ignore[no-any-return]


@pytest.fixture
def risk_env(decile_env: dict[str, str]) -> dict[str, str]:
    return {**decile_env, "DECILE_SERVICE": "risk", "DECILE_RISK__TF": TF}


@contextlib.contextmanager
def risk_service(env: dict[str, str], port: int) -> Iterator[Popen[bytes]]:
    with service_process("decile_risk", env, port) as proc:
        try:
            wait_ready(port, proc)
            yield proc
        except BaseException:
            print(output(proc)[-5000:])
            raise


async def metrics_text(port: int) -> str:
    return (await asyncio.to_thread(http_get, port, "/metrics"))[1]


async def feed_inputs(bus: Bus, port: int, symbols: tuple[str, ...]) -> None:
    """A fresh bar for ``symbols`` and a production entry model; wait until risk saw both."""
    await bus.publish(bars(symbols, last_closed_bar(datetime.now(UTC))))
    await bus.publish(ModelActivated(
        family="entry", version="1.0.0", status="production", artifact_uri="file:///m.onnx",
        sha256="ab" * 32, feature_schema="fs-v1", producer="model-watcher"))

    async def seen() -> bool:
        text = await metrics_text(port)
        return (metric_value(text, "decile_risk_symbols_tracked") >= len(symbols)
                and metric_value(text, "decile_risk_model_age_seconds") >= 0)

    assert await eventually(seen, within=20), "risk never saw the bars and the model"


async def test_approves_then_master_kill_rejects_then_approves_again(
    bus: Bus, nats_namespace: str, pg_dsn: str, risk_env: dict[str, str]
) -> None:
    port = free_port()
    switches = await KillSwitches.open(bus.js, nats_namespace)
    with risk_service(risk_env, port) as proc:
        await feed_inputs(bus, port, ("BTC/USDT", "ETH/USDT"))

        first = confirmed()
        await bus.publish(first)
        approved = await decision_for(bus, first)
        assert approved.outcome == "approved", (approved.rejection, output(proc)[-3000:])
        assert approved.id == ids.derive(first.id, "RiskDecision")
        assert approved.intent is not None
        assert approved.intent.quantity > 0
        assert approved.checked[-1] == "win_probability_floor"
        rows = await written_rows(pg_dsn, first.id)
        assert [(r["decision_id"], r["outcome"], r["code"]) for r in rows] == [
            (approved.id, "approved", None)]
        assert rows[0]["intent"] is not None

        await switches.set("master", on=True, reason="integration test halt", by="test")

        async def killed() -> bool:
            text = await metrics_text(port)
            return metric_value(text, "decile_kill_switch", scope="master", key="*") == 1.0

        assert await eventually(killed), "the kill switch gauge never showed master on"
        second = confirmed()
        await bus.publish(second)
        rejected = await decision_for(bus, second)
        assert rejected.outcome == "rejected"
        assert rejected.rejection is not None
        assert rejected.rejection.code.value == "MASTER_KILL"
        assert rejected.checked == ("master_kill",)
        assert "integration test halt" in rejected.rejection.detail
        rows = await written_rows(pg_dsn, second.id)
        assert [(r["outcome"], r["gate"], r["code"]) for r in rows] == [
            ("rejected", "master_kill", "MASTER_KILL")]

        await switches.set("master", on=False, by="test")

        async def cleared() -> bool:
            text = await metrics_text(port)
            return metric_value(text, "decile_kill_switch", scope="master", key="*") == 0.0

        assert await eventually(cleared)
        third = confirmed("ETH/USDT")
        await bus.publish(third)
        assert (await decision_for(bus, third)).outcome == "approved"

        text = await metrics_when(port, "decile_risk_decisions_total", 2, outcome="approved")
        assert metric_value(text, "decile_risk_decisions_total", code="MASTER_KILL") == 1
        assert metric_value(text, "decile_risk_daily_loss_limit") == pytest.approx(300.0)
        assert metric_value(text, "decile_risk_equity") == pytest.approx(10_000.0)


async def test_a_symbol_without_a_recent_bar_is_rejected_as_stale(
    bus: Bus, pg_dsn: str, risk_env: dict[str, str]
) -> None:
    port = free_port()
    with risk_service(risk_env, port):
        await feed_inputs(bus, port, ("BTC/USDT",))
        old = last_closed_bar(datetime.now(UTC)) - 10 * BAR
        await bus.publish(bars(("ETH/USDT",), old))  # ETH's newest bar is 10 bars old

        async def eth_seen() -> bool:
            return metric_value(await metrics_text(port), "decile_risk_symbols_tracked") >= 2

        assert await eventually(eth_seen)
        for symbol, values in (("ETH/USDT", True), ("SOL/USDT", False)):  # old bar, no bar
            confirm = confirmed(symbol)
            await bus.publish(confirm)
            decision = await decision_for(bus, confirm)
            assert decision.rejection is not None, decision
            assert decision.rejection.code.value == "STALE_DATA"
            assert decision.rejection.gate == "stale_data"
            assert (decision.rejection.values["value"] is not None) == values
            rows = await written_rows(pg_dsn, confirm.id)
            assert [r["code"] for r in rows] == ["STALE_DATA"]


async def test_a_redelivered_confirm_gives_one_audit_row_and_one_event(
    bus: Bus, pg_dsn: str, risk_env: dict[str, str]
) -> None:
    port = free_port()
    confirm = confirmed()
    with risk_service(risk_env, port):
        await feed_inputs(bus, port, ("BTC/USDT",))
        await bus.publish(confirm)
        first = await decision_for(bus, confirm)
        assert first.outcome == "approved"
        # the same event again under another message id: the stream's dedup cannot drop it
        body, headers = codec.encode(confirm)
        subject = bus.subjects.ml_confirmed("BTC/USDT")
        await bus.js.publish(subject, body, headers={**headers, codec.H_MSG_ID: ids.new_id()})

        async def republished() -> bool:
            return metric_value(await metrics_text(port), "decile_risk_republished_total") >= 1

        assert await eventually(republished), "the copy was never handled"
    # a restart, and the copy once more: the durable consumer and the audit row hold
    with risk_service(risk_env, port):
        await bus.js.publish(subject, body, headers={**headers, codec.H_MSG_ID: ids.new_id()})

        async def handled_again() -> bool:
            return metric_value(await metrics_text(port), "decile_risk_republished_total") >= 1

        assert await eventually(handled_again), "the copy after restart was never handled"
        text = await metrics_text(port)
        assert metric_value(text, "decile_risk_decisions_total") == 0
    decisions = [d for d in await risk_decisions(bus) if d.confirm.id == confirm.id]
    assert [d.id for d in decisions] == [first.id]
    assert decisions[0] == first  # the stored decision, published again unchanged
    assert len(await audit_rows(pg_dsn, confirm.id)) == 1


def predecessors(confirm: ConfirmDecision) -> RiskDecision:
    """What a process that died before its INSERT published for ``confirm``: a master-kill
    rejection, where the process under test would approve."""
    return confirm.follow(
        RiskDecision, confirm=confirm, outcome="rejected", producer="risk",
        rejection=Rejection(gate="master_kill", code=ReasonCode.MASTER_KILL),
        checked=("master_kill",), ts_event=confirm.decided_at)


@pytest.mark.parametrize("newest", [True, False], ids=["newest-on-stream", "older"])
async def test_a_decision_published_before_a_crash_is_the_one_recorded(
    bus: Bus, pg_dsn: str, risk_env: dict[str, str], newest: bool
) -> None:
    port = free_port()
    confirm = confirmed()
    published = predecessors(confirm)
    await bus.publish(published)
    later = predecessors(confirmed("ETH/USDT"))
    if not newest:  # another decision after it: found through the duplicate's ack instead
        await bus.publish(later)
    with risk_service(risk_env, port):
        await feed_inputs(bus, port, ("BTC/USDT",))
        await bus.publish(confirm)  # the confirm the dead process never acked

        async def recorded() -> bool:
            return bool(await audit_rows(pg_dsn, confirm.id))

        assert await eventually(recorded, within=20), "the confirm was never recorded"
    [row] = await audit_rows(pg_dsn, confirm.id)
    assert (row["decision_id"], row["outcome"], row["gate"]) == (
        published.id, "rejected", "master_kill")
    assert [d for d in await risk_decisions(bus) if d.confirm.id == confirm.id] == [published]
    # every decision only on the stream at start was recorded then
    assert len(await audit_rows(pg_dsn, later.confirm.id)) == (0 if newest else 1)


async def test_the_audit_table_refuses_update_and_delete(
    bus: Bus, pg_dsn: str, risk_env: dict[str, str]
) -> None:
    port = free_port()
    confirm = confirmed()
    with risk_service(risk_env, port):
        await feed_inputs(bus, port, ("BTC/USDT",))
        await bus.publish(confirm)
        await decision_for(bus, confirm)
    conn = await asyncpg.connect(pg_dsn)
    try:
        for sql in ("UPDATE risk_decisions SET outcome = 'rejected'", "DELETE FROM risk_decisions",
                    "TRUNCATE risk_decisions"):
            with pytest.raises(asyncpg.PostgresError, match="append-only"):
                await conn.execute(sql)
        assert await conn.fetchval("SELECT count(*) FROM risk_decisions") == 1
    finally:
        await conn.close()


def losing_trade(pnl: float) -> TradeClosed:
    now = datetime.now(UTC)
    return TradeClosed(
        decision_id=ids.new_id(), symbol="ETH/USDT", side="long", quantity=1.0,
        entry_price=100.0, exit_price=90.0, entry_time=now - 3 * BAR, exit_time=now,
        exit_reason="stop", pnl=pnl, fees=0.1, realised_r=-1.1, mae_r=-1.2, mfe_r=0.3,
        hold_bars=3, p_win=0.57, strategy="breakout", model_versions={"entry": "1.0.0"},
        producer="paper",
    )


async def test_a_daily_loss_from_closed_trades_halts_new_risk_and_survives_a_restart(
    bus: Bus, pg_dsn: str, risk_env: dict[str, str]
) -> None:
    port = free_port()
    with risk_service(risk_env, port):
        await feed_inputs(bus, port, ("BTC/USDT",))
        vetoed = confirmed(decision="veto")  # on ml.vetoed: never risk's business
        await bus.publish(vetoed)
        await bus.publish(losing_trade(-400.0))  # 4% of 10,000 > the 3% daily limit

        async def booked() -> bool:
            return metric_value(await metrics_text(port), "decile_risk_daily_pnl") == -400.0

        assert await eventually(booked), "the closed trade never reached the book"
        confirm = confirmed()
        await bus.publish(confirm)
        decision = await decision_for(bus, confirm)
        assert decision.rejection is not None
        assert decision.rejection.code.value == "DAILY_LOSS_LIMIT"
    with risk_service(risk_env, port):  # the EXEC stream is replayed into the new book
        await feed_inputs(bus, port, ("BTC/USDT",))
        assert await eventually(booked), "the restarted book lost the closed trade"
        again = confirmed()
        await bus.publish(again)
        decision = await decision_for(bus, again)
        assert decision.rejection is not None
        assert decision.rejection.code.value == "DAILY_LOSS_LIMIT"
    assert not [d for d in await risk_decisions(bus) if d.confirm.id == vetoed.id]
    assert await audit_rows(pg_dsn, vetoed.id) == []
