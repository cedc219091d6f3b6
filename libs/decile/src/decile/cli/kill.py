"""``decile kill on|off|status``: the kill switches by hand.

``on`` halts new risk for the whole fleet (no option), one symbol (``--symbol``),
one strategy (``--strategy``) or records an automatic halt (``--auto REASON``);
it needs ``--reason``, which every rejected trade will carry. ``off`` clears the
same switch. Each write goes to the JetStream KV bucket the risk service watches,
then a ``KillSwitchChanged`` event is published on ``risk.kill.<scope>`` (RISK
stream) for the audit trail. NATS comes from ``DECILE_NATS__URL`` and
``DECILE_NATS__NAMESPACE``; who did it from ``DECILE_ACTOR`` or the login name.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import nats.errors
import typer
from rich.table import Table

from decile.bus import Bus, StreamConflict, make_broker, provision_streams
from decile.cli.registry_access import actor, console, out
from decile.config import ServiceSettings, load_settings
from decile.killswitch import KillSwitches, Scope, Switch, changed_event, state_of
from decile.servers import redact
from decile.subjects import Subjects

SERVICE = "kill-cli"

app = typer.Typer(
    name="kill",
    help="Kill switches: halt new risk for the fleet, a symbol or a strategy.",
    no_args_is_help=True,
)

SymbolOpt = Annotated[
    str | None, typer.Option("--symbol", "-s", help="Only this symbol, e.g. BTC/USDT.")
]
StrategyOpt = Annotated[str | None, typer.Option("--strategy", help="Only this strategy id.")]
AutoOpt = Annotated[
    str | None,
    typer.Option("--auto", metavar="REASON", help="An automatic halt (auto.<REASON>)."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@dataclass(frozen=True, slots=True)
class Target:
    scope: Scope
    key: str = "*"

    @property
    def label(self) -> str:
        return "master" if self.scope == "master" else f"{self.scope} {self.key}"


def target(symbol: str | None, strategy: str | None, auto: str | None) -> Target:
    """The one switch the options name; none of them means the master switch."""
    given = [(s, v) for s, v in (("symbol", symbol), ("strategy", strategy), ("auto", auto)) if v]
    if len(given) > 1:
        raise typer.BadParameter("name at most one of --symbol, --strategy, --auto")
    if not given:
        return Target("master")
    scope, value = given[0]
    if scope == "symbol":
        value = value.strip().upper()
        if "/" not in value and value.count("-") == 1:  # the subject token form BTC-USDT
            value = value.replace("-", "/")
        return Target("symbol", value)
    return Target("strategy" if scope == "strategy" else "auto", value.strip())


@app.command("on")
def on(
    symbol: SymbolOpt = None,
    strategy: StrategyOpt = None,
    auto: AutoOpt = None,
    reason: Annotated[
        str | None, typer.Option("--reason", "-r", help="Why (required): rejections carry it.")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Turn a kill switch ON: no new risk for the fleet, a symbol or a strategy."""
    if not reason or not reason.strip():
        raise typer.BadParameter(
            "turning a kill switch on needs --reason TEXT (every rejected trade carries it)",
            param_hint="--reason",
        )
    _write(target(symbol, strategy, auto), True, reason, as_json)


@app.command("off")
def off(
    symbol: SymbolOpt = None,
    strategy: StrategyOpt = None,
    auto: AutoOpt = None,
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why, for the audit trail.")] = (
        "cleared"
    ),
    as_json: AsJson = False,
) -> None:
    """Turn a kill switch OFF (the switch's record stays, with who cleared it and why)."""
    _write(target(symbol, strategy, auto), False, reason, as_json)


@app.command("status")
def status(as_json: AsJson = False) -> None:
    """Show every kill switch and whether new risk is halted."""
    switches = asyncio.run(_read(load_settings(ServiceSettings)))
    state = state_of(switches)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "halted": state.halted,
                    "master": state.master,
                    "symbols": sorted(state.symbols),
                    "strategies": sorted(state.strategies),
                    "auto": sorted(state.auto),
                    "switches": [_doc(s) for s in switches],
                }
            )
        )
        return
    title = "[bold red]HALTED[/]: no new risk" if state.halted else "trading allowed"
    table = Table(title=title)
    for col in ("switch", "state", "reason", "by", "at"):
        table.add_column(col)
    for s in switches:
        shown = "[bold red]ON[/]" if s.on else "off"
        table.add_row(s.kv_key, shown, s.reason, s.by, s.at.isoformat(timespec="seconds"))
    out.print(table if switches else f"{title} (no switch was ever set)")


def _write(t: Target, on: bool, reason: str, as_json: bool) -> None:
    cfg = load_settings(ServiceSettings)
    try:
        switch, published = asyncio.run(_set(cfg, t, on, reason))
    except ValueError as err:  # a symbol or strategy that cannot be a switch key
        raise typer.BadParameter(str(err)) from None
    if as_json:
        typer.echo(json.dumps({**_doc(switch), "published": published}))
    else:
        state = "[bold red]ON[/]" if on else "[green]off[/]"
        out.print(f"kill switch {t.label}: {state} ({switch.reason}; by {switch.by})")
    if not published:
        raise typer.Exit(1)


async def _set(cfg: ServiceSettings, t: Target, on: bool, reason: str) -> tuple[Switch, bool]:
    """Write the switch, then announce it; the switch holds even if the announcement fails."""
    async with _connected(cfg, provision=True) as (bus, switches):
        switch = await switches.set(t.scope, t.key, on=on, reason=reason, by=actor())
        try:
            await bus.publish(changed_event(switch, producer=SERVICE))
        except (nats.errors.Error, TimeoutError) as err:
            console.print(f"[yellow]switch set, but the KillSwitchChanged event failed: {err}[/]")
            return switch, False
        return switch, True


async def _read(cfg: ServiceSettings) -> list[Switch]:
    async with _connected(cfg, provision=False) as (_, switches):
        return await switches.switches()


@asynccontextmanager
async def _connected(
    cfg: ServiceSettings, *, provision: bool
) -> AsyncIterator[tuple[Bus, KillSwitches]]:
    """A broker, the streams (when publishing) and the bucket; one clear line if NATS is away.

    The broker reconnects forever by design (services), so the first connect is bounded here.
    """
    broker = make_broker(cfg.nats, SERVICE)
    subjects = Subjects(cfg.nats.namespace)
    try:
        wait_s = 2 * cfg.nats.connect_timeout_s + cfg.nats.reconnect_wait_s
        try:
            await asyncio.wait_for(broker.connect(), timeout=wait_s)
        except (OSError, TimeoutError, nats.errors.Error) as err:
            why = f"no answer within {wait_s:g} s" if isinstance(err, TimeoutError) else repr(err)
            console.print(f"[red]cannot reach NATS at {redact(cfg.nats.url)}: {why}[/red]")
            raise typer.Exit(2) from None
        bus = Bus(broker, subjects, SERVICE)
        if provision:
            try:
                await provision_streams(bus.js, subjects, cfg.nats)
            except StreamConflict as err:
                console.print(f"[red]{err}[/red]")
                raise typer.Exit(2) from None
        switches = await KillSwitches.open(
            bus.js, cfg.nats.namespace, replicas=cfg.nats.stream_replicas
        )
        yield bus, switches
    finally:
        await broker.stop()


def _doc(s: Switch) -> dict[str, Any]:
    return {
        "switch": s.kv_key,
        "scope": s.scope,
        "key": s.key,
        "on": s.on,
        "reason": s.reason,
        "by": s.by,
        "at": s.at.isoformat(),
        "revision": s.revision,
    }


def register(root: typer.Typer) -> None:
    root.add_typer(app, rich_help_panel="Risk")
