"""The one bootstrap of the risk service."""

from __future__ import annotations

import contextlib
import time
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import nats.js.errors as js_errors

from decile.clock import EventClock
from decile.events import (
    BarBatch,
    ConfirmDecision,
    Event,
    Fill,
    KillSwitchChanged,
    ModelActivated,
    RetrainRequested,
    RiskDecision,
    TradeClosed,
)
from decile.killswitch import KillSwitches
from decile.obs import get_logger
from decile.rebuild import replay_to_floor, resume_after_floor, stored
from decile.risk import CandidateContext, KillState, decision_event, evaluate
from decile.risk.context import bar_seconds
from decile.risk.outcomes import WinRateMonitor
from decile.service import Runtime, create_runtime
from decile.store import migrate
from decile.store.pool import open_pool
from decile_risk import metrics as m
from decile_risk.audit import AuditLog, recover
from decile_risk.book import LiveBook
from decile_risk.settings import RiskSettings

log = get_logger(__name__)

# Consumers whose state is the whole history: deleted at start so they replay the stream
EXEC_DURABLE = "risk-exec"
MODEL_DURABLE = "risk-model-activated"
CONFIRMED_DURABLE = "risk-confirmed"


def create_app(settings: RiskSettings) -> Runtime:
    rt = create_runtime(settings)
    rt.ready("postgres", False)
    rt.ready("kill", False)
    cfg = settings.risk
    config = cfg.config()
    book = LiveBook(cfg.start_equity, returns_window=cfg.returns_window, clusters=cfg.clusters,
                    bar=timedelta(seconds=bar_seconds(cfg.tf)))
    clock = EventClock(cfg.clock)
    outcomes = WinRateMonitor(window=cfg.winrate_window, max_gap=cfg.winrate_max_gap)
    bars_durable = f"risk-bars-{cfg.tf}"
    # kill: fail closed until read; published: the newest decision on RISK at start
    holder: dict[str, Any] = {"kill": KillState.unknown(), "published": None}
    m.DAILY_LOSS_LIMIT.set(config.max_daily_loss * cfg.start_equity)

    async def on_confirm(confirm: ConfirmDecision) -> None:
        """A confirmed (approved or inverted) candidate -> gates -> published, audited
        RiskDecision (see decile_risk.audit for the order of the two)."""
        if confirm.decision == "veto":  # final already; never routed here on ml.confirmed
            return
        start = time.perf_counter()
        now = clock.now(confirm.decided_at)
        ctx = CandidateContext.from_confirm(confirm, now)
        state = book.state(now, holder["kill"], ctx.symbol)
        verdict_equity = state.equity  # the gauges show what the gates saw
        verdict = evaluate(ctx, state, config)
        decision = decision_event(confirm, verdict, producer=rt.name)
        before: RiskDecision | None = holder["published"]
        if before is not None and before.id == decision.id:
            decision = before  # decided before a restart: the stream's copy, once more
        ack = await rt.bus.publish(decision)
        if ack.duplicate and decision is not before:  # a predecessor published this id
            decision = await stored(rt.bus, "RISK", ack.seq, RiskDecision)
        await holder["audit"].submit(decision)  # written in the background (see audit.py)
        book.on_decision(decision)
        rej = decision.rejection
        if not ack.duplicate:
            m.DECISIONS.labels(decision.outcome, rej.gate if rej else "",
                               rej.code.value if rej else "").inc()
        else:
            m.REPUBLISHED.inc()
        m.DECISION_SECONDS.observe(time.perf_counter() - start)
        _book_metrics(book, now, config.max_daily_loss, equity=verdict_equity)
        _model_metric(book, now)
        log.info("risk decision", id=decision.id, symbol=decision.symbol,
                 outcome=decision.outcome, code=rej.code.value if rej else None,
                 republished=bool(ack.duplicate))

    async def on_bars(batch: BarBatch) -> None:
        """Bar cross-sections: freshness per symbol, rolling returns, marks."""
        book.on_bars(batch)
        m.SYMBOLS_TRACKED.set(len(book.last_bar_time))

    async def on_exec(event: Event) -> None:
        """Fills and closed trades: queued, they count from the next decision after their
        time (at once on the wall clock, for the gauges)."""
        if isinstance(event, Fill | TradeClosed):
            book.on_exec(event)
        if isinstance(event, TradeClosed):
            await _watch_outcomes(outcomes, event, rt)
        if clock.mode == "wall":
            now = clock.now()
            book.advance(now)
            _book_metrics(book, now, config.max_daily_loss)

    async def on_model(event: ModelActivated) -> None:
        """A production entry model: its age starts at its registration (registry) or, when
        the registry does not know it, at the activation's event time."""
        if event.family != "entry" or event.status != "production":
            return
        created = await _registered_at(holder["pool"], event.family, event.version)
        book.on_model(created or event.ts_event)
        _model_metric(book, clock.now())

    rt.subscribe(on_confirm, family="ml", kind="confirmed", event=ConfirmDecision, stream="SIG",
                 durable=CONFIRMED_DURABLE, batch_size=1, max_wait_s=1.0, ordered=True, direct=True)
    rt.subscribe(on_bars, family="md", kind="bars", key=cfg.tf, event=BarBatch, stream="MD",
                 durable=bars_durable, batch_size=1, max_wait_s=1.0, ordered=True, direct=True)
    rt.subscribe(on_exec, family="exec", kind=None, event=None, stream="EXEC",
                 durable=EXEC_DURABLE, batch_size=1, max_wait_s=1.0, ordered=True, direct=True)
    rt.subscribe(on_model, family="model", kind="activated", event=ModelActivated,
                 stream="MODEL", durable=MODEL_DURABLE, batch_size=1, max_wait_s=1.0,
                 ordered=True, direct=True)
    rt.produces(RiskDecision, "risk", "approved", "One per approved confirm: the sized order.")
    rt.produces(RiskDecision, "risk", "rejected", "One per refused confirm: the first gate.")
    rt.produces(KillSwitchChanged, "risk", "kill", "Not published here: read by the watcher.")
    rt.produces(RetrainRequested, "model", "retrain",
                "Rolling win rate of the last 500 closed trades off the expected by > 5 points.")

    @rt.on_start
    async def _state() -> None:
        pool = await open_pool(settings.postgres)
        async with pool.acquire() as conn:
            await migrate.apply(conn)
        holder["pool"] = pool
        audit = AuditLog(pool)
        holder["audit"] = audit
        # decisions published by a process that died before its writer caught up
        holder["published"] = await recover(rt.bus, audit)
        for decision in await audit.approved():
            book.on_decision(decision)  # stops of positions opened before a restart
        created = await _production_created(pool, "entry")
        if created is not None:
            book.on_model(created)
        _model_metric(book, clock.now())
        # bar history (freshness, returns, marks) up to what was handled before a restart
        await replay_to_floor(rt.bus, stream="MD", subject=rt.subjects.md_bars(cfg.tf),
                              durable=bars_durable, event=BarBatch, apply=book.on_bars)
        # a confirm decision a killed predecessor held comes back now, not after the ack wait
        await resume_after_floor(rt.bus, stream="SIG", subject=rt.subjects.all("ml", "confirmed"),
                                 durable=CONFIRMED_DURABLE)
        # the book is the whole EXEC history: replay it from the stream's start
        for stream, durable in (("EXEC", EXEC_DURABLE), ("MODEL", MODEL_DURABLE)):
            with contextlib.suppress(js_errors.NotFoundError):
                await rt.bus.js.delete_consumer(rt.subjects.stream(stream), durable)
        rt.ready("postgres")
        # the switches are read before any consumer starts: a confirm redelivered to a
        # restarted service is judged on the real state, not the fail-closed unknown one
        switches = await KillSwitches.open(rt.bus.js, settings.nats.namespace)
        holder["switches"] = switches
        holder["kill"] = await switches.state()
        log.info("risk limits", **config.limits(), start_equity=cfg.start_equity, tf=cfg.tf,
                 clock=cfg.clock)

    @rt.after_start
    async def _watch_kill() -> None:
        rt.spawn(_follow_kill(holder["switches"], holder, rt), "kill-switch-watch")
        audit: AuditLog = holder["audit"]
        rt.spawn(audit.writer(lambda ok: rt.ready("postgres", ok)), "audit-writer")

        @rt.on_stop  # registered after the writer's own stop hook: runs before it
        async def _flush() -> None:
            try:
                await audit.flush()
            except TimeoutError:  # the stream keeps them: recorded at the next start
                log.warning("audit writer behind at stop", pending=audit.queue.qsize())

    @rt.on_stop
    async def _close() -> None:
        if "pool" in holder:
            await holder["pool"].close()

    return rt


async def _follow_kill(switches: KillSwitches, holder: dict[str, Any], rt: Runtime) -> None:
    shown: set[tuple[str, str]] = set()
    async for state in switches.watch():
        holder["kill"] = state
        on = {("master", "*")} if state.master else set()
        on |= {("symbol", s) for s in state.symbols}
        on |= {("strategy", s) for s in state.strategies}
        on |= {("auto", s) for s in state.auto}
        for scope, key in shown - on:
            m.KILL_SWITCH.labels(scope, key).set(0)
        for scope, key in on:
            m.KILL_SWITCH.labels(scope, key).set(1)
        if not state.master:
            m.KILL_SWITCH.labels("master", "*").set(0)
        shown |= on
        log.info("kill state", master=state.master, symbols=sorted(state.symbols),
                 strategies=sorted(state.strategies), auto=sorted(state.auto))
        rt.ready("kill")


async def _watch_outcomes(monitor: WinRateMonitor, trade: TradeClosed, rt: Runtime) -> None:
    """Closed trades against the entry model's own expectation; a retrain when they part."""
    deviation = monitor.add(trade)
    m.WINRATE_TRADES.labels("entry").set(monitor.trades)
    m.WINRATE_ROLLING.labels("entry").set(monitor.win_rate or 0.0)
    m.WINRATE_EXPECTED.labels("entry").set(monitor.expected_rate or 0.0)
    if deviation is None:
        return
    log.warning("win rate off the model's expectation: retraining requested", **deviation.values)
    m.RETRAIN_REQUESTS.labels("entry", deviation.code.value).inc()
    await rt.bus.publish(trade.follow(
        RetrainRequested, "retrain", "entry", producer=rt.name, family="entry",
        reason=deviation, values={"model": trade.model_versions.get("entry", "")}))


def _book_metrics(book: LiveBook, now: datetime, max_daily_loss: float,
                  equity: float | None = None) -> None:
    equity = book.equity(now) if equity is None else equity
    sod = book.start_of_day_equity(now)
    m.EQUITY.set(equity)
    m.PEAK_EQUITY.set(max(book.peak, equity))
    m.OPEN_POSITIONS.set(len(book.open))
    m.DAILY_PNL.set(equity - sod)
    m.DAILY_LOSS_LIMIT.set(max_daily_loss * sod)


def _model_metric(book: LiveBook, now: datetime) -> None:
    age = book.model_age_s(now)
    m.MODEL_AGE.set(-1.0 if age is None else age)


async def _registered_at(pool: asyncpg.Pool, family: str, version: str) -> datetime | None:
    async with pool.acquire() as conn:
        value = await conn.fetchval(
            "SELECT created_at FROM model_versions WHERE family = $1 AND version = $2",
            family, version,
        )
    return value if isinstance(value, datetime) else None


async def _production_created(pool: asyncpg.Pool, family: str) -> datetime | None:
    async with pool.acquire() as conn:
        value = await conn.fetchval(
            "SELECT created_at FROM model_versions WHERE family = $1 AND status = 'production'",
            family,
        )
    return value if isinstance(value, datetime) else None
