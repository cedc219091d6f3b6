"""Fleet commands: ``decile up``, ``decile status``, ``decile services``."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.table import Table

from decile import servers
from decile.fleet import FLEET, ServiceSpec, installed
from decile.supervisor import FleetRunning, run_fleet

FleetOption = Annotated[
    str | None,
    typer.Option(
        "--fleet",
        metavar="MODULE:ATTR",
        help="Use another registry than decile.fleet:FLEET: an importable tuple of "
        "ServiceSpec (tests and experiments).",
        rich_help_panel="Advanced",
    ),
]


def load_fleet(ref: str | None) -> tuple[ServiceSpec, ...]:
    """The registry named ``module:attr``, or the built-in :data:`decile.fleet.FLEET`."""
    if not ref:
        return FLEET
    module_name, _, attr = ref.partition(":")
    try:
        value = getattr(importlib.import_module(module_name), attr or "FLEET")
    except (ImportError, AttributeError) as err:
        raise typer.BadParameter(f"cannot load fleet {ref!r}: {err}", param_hint="--fleet") from err
    specs = tuple(value)
    if not all(isinstance(s, ServiceSpec) for s in specs):
        raise typer.BadParameter(f"{ref!r} is not a tuple of ServiceSpec", param_hint="--fleet")
    return specs


def up(
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Replay bars from this file or folder instead of a live feed.",
        ),
    ] = None,
    generator: Annotated[
        int | None,
        typer.Option(
            "--generator",
            min=1,
            metavar="N",
            help="Feed synthetic bars for N symbols instead of a live feed.",
        ),
    ] = None,
    state_dir: Annotated[
        Path,
        typer.Option(
            "--state-dir",
            envvar="DECILE_STATE_DIR",
            help="Where fleet.json, embedded server data and logs live.",
        ),
    ] = Path(".state"),
    embedded: Annotated[
        bool,
        typer.Option(
            "--embedded",
            help="Never reuse servers on the default local ports; start embedded ones "
            "(same as DECILE_EMBEDDED_ONLY=1). URLs set in the environment still win.",
        ),
    ] = False,
    grace: Annotated[
        float,
        typer.Option(
            "--grace", min=0.0, help="Seconds a service gets after SIGTERM before SIGKILL."
        ),
    ] = 10.0,
    fleet: FleetOption = None,
    train: Annotated[
        bool,
        typer.Option(
            "--train/--no-train",
            help="On a registry without a production entry model, first train every family "
            "on the bundled sample and promote those that pass the gate (about 20 s).",
        ),
    ] = True,
) -> None:
    """Start the servers and every installed service, and keep them running.

    Servers: for NATS, PostgreSQL and Redis, the URL in DECILE_NATS__URL,
    DECILE_POSTGRES__DSN or DECILE_REDIS__URL if set (it must answer); else a
    server on the default local port; else an embedded one started here and
    stopped on exit. Only the servers the installed services need are ensured.

    Services run as `python -m decile_<name>` with their output prefixed by
    their name; a crashed one restarts with exponential backoff (capped at 30 s).
    Ctrl-C (or SIGTERM) stops everything, a second Ctrl-C kills at once.

    --data / --generator reach ingest as DECILE_INGEST__SOURCE (replay or
    generator) with DECILE_INGEST__PATH or DECILE_INGEST__GENERATOR_SYMBOLS.

    Model artifacts live under <state-dir>/models unless DECILE_ARTIFACTS__ROOT
    is set; with --train (the default) a first run trains the models inference needs.
    """
    if data is not None and generator is not None:
        raise typer.BadParameter("choose one source: --data or --generator", param_hint="--data")
    ingest_env: dict[str, str] = {}
    if data is not None:
        ingest_env = {"DECILE_INGEST__SOURCE": "replay",
                      "DECILE_INGEST__PATH": str(data.resolve())}  # fmt: skip
    elif generator is not None:
        ingest_env = {"DECILE_INGEST__SOURCE": "generator",
                      "DECILE_INGEST__GENERATOR_SYMBOLS": str(generator)}  # fmt: skip
    env = dict(os.environ)
    service_env = _replay_env({**env, **ingest_env})
    service_env["ingest"] = {**service_env.get("ingest", {}), **ingest_env}
    artifacts = Path(env.setdefault("DECILE_ARTIFACTS__ROOT", str(state_dir.resolve() / "models")))
    specs = load_fleet(fleet)
    scoring = any(s.name == "inference" and installed(s) for s in specs)
    local = env.get("DECILE_ARTIFACTS__BACKEND", "local") == "local"

    def first_models(endpoints: Mapping[str, servers.Endpoint], say: Callable[[str], None]) -> None:
        from decile.bootstrap import bootstrap  # training imports are heavy: only when needed

        if "postgres" in endpoints:
            bootstrap(endpoints["postgres"].url, artifacts, say)

    try:
        code = run_fleet(
            specs, state_dir, env=env,
            service_env=service_env, prefer_embedded=True if embedded else None,
            grace=grace, prepare=first_models if train and scoring and local else None,
        )  # fmt: skip
    except (FleetRunning, servers.ServerUnavailable) as err:
        Console(stderr=True).print(f"[red]decile up:[/red] {err}", highlight=False)
        raise typer.Exit(2) from None
    raise typer.Exit(code)


def _replay_env(env: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """A replay (any source but live) runs in lockstep with the fleet and the decision
    services judge time on the bars' clock: the wall clock would find every 2021 bar stale.
    Set in the environment, the user's values win."""
    if env.get("DECILE_INGEST__SOURCE", "replay") == "live":
        return {}
    wanted = {"ingest": ("DECILE_INGEST__LOCKSTEP", "true"),
              "confirm": ("DECILE_CONFIRM__CLOCK", "event"),
              "risk": ("DECILE_RISK__CLOCK", "event")}
    return {name: {var: value} for name, (var, value) in wanted.items() if var not in env}


def probe_ready(host: str, port: int, timeout: float) -> str:
    """'ready', 'not ready' (answers but /readyz is not 200) or 'down' (no answer)."""
    try:
        response = httpx.get(f"http://{host}:{port}/readyz", timeout=timeout)
    except httpx.HTTPError:
        return "down"
    return "ready" if response.status_code == 200 else "not ready"


_STYLES = {"ready": "green", "not ready": "yellow", "down": "red"}


def status(
    host: Annotated[str, typer.Option("--host", help="Where the services listen.")] = "127.0.0.1",
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.05, help="Seconds to wait for each /readyz.")
    ] = 1.0,
    fleet: FleetOption = None,
) -> None:
    """Ask each installed service's GET /readyz and show a table.

    States: ready (HTTP 200), not ready (answers, but not 200: still
    starting or a dependency is missing), down (nothing listens on its port).
    Exits 1 if any installed service is not ready, so scripts can wait on it.
    """
    specs = [s for s in load_fleet(fleet) if installed(s)]
    console = Console()
    if not specs:
        console.print("no service of the fleet is installed here (see `decile services`)")
        return
    table = Table(title="decile fleet")
    table.add_column("service")
    table.add_column("port", justify="right")
    table.add_column("state")
    all_ready = True
    for spec in specs:
        state = probe_ready(host, spec.http_port, timeout)
        all_ready &= state == "ready"
        table.add_row(spec.name, str(spec.http_port), f"[{_STYLES[state]}]{state}[/]")
    console.print(table)
    if not all_ready:
        raise typer.Exit(1)


def services(fleet: FleetOption = None) -> None:
    """List the fleet registry in start order: module, HTTP port, servers needed, installed.

    A service that is not installed is skipped by `decile up` and `decile status`.
    """
    table = Table(title="decile services")
    for column in ("service", "module", "port", "needs", "installed"):
        table.add_column(column, justify="right" if column == "port" else "left")
    for spec in load_fleet(fleet):
        ok = installed(spec)
        table.add_row(
            spec.name, spec.module, str(spec.http_port), ", ".join(sorted(spec.needs)) or "-",
            "[green]yes[/]" if ok else "[dim]no[/]",
        )  # fmt: skip
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add the fleet commands to the ``decile`` app."""
    app.command()(up)
    app.command()(status)
    app.command()(services)


__all__ = ["load_fleet", "probe_ready", "register"]
