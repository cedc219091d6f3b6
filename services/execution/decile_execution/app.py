"""The one bootstrap of the execution service."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import nats.errors

from decile.events import BarBatch, Fill, Order, RiskDecision, TradeClosed
from decile.killswitch import KillSwitches
from decile.obs import get_logger
from decile.risk import KillState
from decile.service import Runtime, create_runtime
from decile.store import migrate
from decile.store.pool import open_pool
from decile_execution import metrics as m
from decile_execution import recovery
from decile_execution.desk import Step
from decile_execution.settings import ExecutionSettings
from decile_execution.state import SAVE_ERRORS, Account, Input, StateStore

log = get_logger(__name__)

APPROVED_DURABLE = "execution-approved"
LOGGED = {"decision_id", "symbol", "status", "leg", "price", "exit_reason", "pnl", "realised_r"}


def create_app(settings: ExecutionSettings) -> Runtime:
    rt = create_runtime(settings)
    rt.ready("postgres", False)
    rt.ready("kill", False)
    cfg = settings.execution
    config = cfg.config()
    bars_durable = f"execution-bars-{cfg.tf}"
    holder: dict[str, Any] = {"kill": KillState.unknown()}  # fail closed until read
    m.HALTED.set(1)

    async def on_decision(decision: RiskDecision) -> None:
        """An approved decision -> Order accepted, or cancelled while a kill switch is on."""
        start = time.perf_counter()
        account: Account = holder["account"]
        step = await account.handle(Input("risk", approved.position, decision), holder["kill"])
        _record(step, account)
        m.HANDLE_SECONDS.labels("decision").observe(time.perf_counter() - start)

    async def on_bars(batch: BarBatch) -> None:
        """One bar cross-section -> exits, fills, expiries of the open book."""
        start = time.perf_counter()
        account: Account = holder["account"]
        step = await account.handle(Input("md", bars.position, batch), holder["kill"])
        _record(step, account)
        m.HANDLE_SECONDS.labels("bars").observe(time.perf_counter() - start)

    approved = rt.subscribe(
        on_decision, family="risk", kind="approved", event=RiskDecision, stream="RISK",
        durable=APPROVED_DURABLE, batch_size=1, max_wait_s=1.0, ordered=True, direct=True)
    bars = rt.subscribe(
        on_bars, family="md", kind="bars", key=cfg.tf, event=BarBatch, stream="MD",
        durable=bars_durable, batch_size=1, max_wait_s=1.0, ordered=True, direct=True)
    rt.produces(Order, "exec", "order", "Accepted, cancelled (kill switch) or expired orders.")
    rt.produces(Fill, "exec", "fill", "Entry and exit fills, costs in the price and the fee.")
    rt.produces(TradeClosed, "exec", "closed", "A closed trade: pnl, realised R, exit reason.")

    @rt.on_start
    async def _state() -> None:
        switches = await KillSwitches.open(rt.bus.js, settings.nats.namespace)
        holder["switches"] = switches
        try:  # read before anything is taken, so a restart cancels nothing by itself
            _set_kill(holder, await asyncio.wait_for(switches.state(), 10.0), rt)
        except (nats.errors.Error, TimeoutError) as err:
            log.warning("kill switches unreadable at start; failing closed", error=repr(err))
        pool = await open_pool(settings.postgres)
        holder["pool"] = pool
        async with pool.acquire() as conn:
            await migrate.apply(conn)
        inputs = (
            recovery.Source("risk", "RISK", rt.subjects.all("risk", "approved"),
                            APPROVED_DURABLE, RiskDecision),
            recovery.Source("md", "MD", rt.subjects.md_bars(cfg.tf), bars_durable, BarBatch),
        )
        account = await recovery.recover(
            rt.bus, StateStore(pool, cfg.account), config, rt.bus.publish_many, inputs,
            holder["kill"], _record)
        holder["account"] = account
        m.ledger(account.desk.broker.ledger())
        rt.ready("postgres")
        log.info("paper account", account=cfg.account, exec_seq=account.exec_seq,
                 positions=account.positions, clock_ms=account.desk.broker.clock_ms,
                 **config.to_dict())

    @rt.after_start
    async def _background() -> None:
        rt.spawn(_follow_kill(holder["switches"], holder, rt), "kill-switch-watch")
        rt.spawn(holder["account"].run_writer(cfg.save_delay_s), "state-writer")

    @rt.on_stop
    async def _close() -> None:  # after the consumers and the writer stopped
        if "account" in holder:
            try:
                await holder["account"].flush()  # a restart then replays nothing
            except SAVE_ERRORS as err:
                log.warning("final state save failed; the next start replays the streams",
                            error=repr(err))
        if "pool" in holder:
            await holder["pool"].close()

    return rt


def _record(step: Step, account: Account) -> None:
    """Metrics and logs of one input taken (live, or replayed at start)."""
    if step.killed:
        m.KILL_CANCELLED.labels(step.killed).inc()
        log.warning("decision cancelled by a kill switch", scope=step.killed,
                    **step.events[0].model_dump(include={"decision_id", "symbol"}))
    if step.changed:  # a repeat republishes what was counted already
        m.count(step.events)
        m.ledger(account.desk.broker.ledger())
        for e in step.events:  # few: risk caps the open book
            log.info("exec event", type=type(e).__name__, id=e.id, **e.model_dump(include=LOGGED))
    if account.skipped:
        m.SKIPPED.inc(account.skipped)
        account.skipped = 0


def _set_kill(holder: dict[str, Any], state: KillState, rt: Runtime) -> None:
    holder["kill"] = state
    m.HALTED.set(1 if state.halted else 0)
    rt.ready("kill")


async def _follow_kill(switches: KillSwitches, holder: dict[str, Any], rt: Runtime) -> None:
    async for state in switches.watch():
        _set_kill(holder, state, rt)
        log.info("kill state", master=state.master, symbols=sorted(state.symbols),
                 strategies=sorted(state.strategies), auto=sorted(state.auto))
