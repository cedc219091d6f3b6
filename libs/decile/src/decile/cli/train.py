"""``decile train``: build new model versions from bars, without look-ahead.

Every version lands in ``staging`` with its metrics.json and ONNX model (and,
for the LightGBM families, its report) in the artifact store; promote it with
``decile models promote``. ``--family confirm`` learns from the recorder's
production outcomes (``--from-db`` only) and trains only when asked: ``all``
is the four LightGBM families, whose data any bars file provides.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from decile.cli.registry_access import (
    TrainerSettings,
    actor,
    console,
    headline,
    opened,
    out,
    settings,
)
from decile.confirm.config import FLEET_DEFAULTS, ConfirmConfig
from decile.confirm.model import FitConfig
from decile.registry import ArtifactStore, Registry
from decile.training.confirm_pipeline import (
    CONFIRM_MIN_ROWS,
    CONFIRM_STEPS,
    ConfirmPlan,
    run_confirm,
)
from decile.training.confirm_pipeline import FAMILY as CONFIRM
from decile.training.models import TrainConfig
from decile.training.pipeline import (
    ALL_FAMILIES,
    DataSpec,
    Step,
    TrainingRun,
    TrainPlan,
    run_training,
    steps_per_family,
)

Work = Callable[[Registry, ArtifactStore, Step], Awaitable[TrainingRun]]
_FLEET_EDGES = ",".join(str(e) for e in ConfirmConfig.fleet().atr_edges)
# Defaults are the confirm service's (FLEET_DEFAULTS), and its DECILE_CONFIRM__* variables are
# read too: a model trained on another flow than the service's is refused there.
_CONFIRM_PANEL = "Confirm flow (--family confirm; must match the confirm service's settings)"


def train(
    family: Annotated[
        str,
        typer.Option(
            "--family", "-f",
            help="entry, risk, rr, offset, confirm, or all (the four LightGBM families).",
        ),
    ] = "all",
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Parquet/Feather file or folder of bars (default: the bundled demo data).",
        ),
    ] = None,
    from_db: Annotated[
        bool,
        typer.Option("--from-db", help="Read bars from the recorder's PostgreSQL table."),
    ] = False,
    symbols: Annotated[
        str | None,
        typer.Option("--symbols", help="Comma-separated symbols to keep, e.g. BTC/USDT,ETH/USDT."),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(help="First bar open time, ISO date (confirm: candidate event time)."),
    ] = None,
    end: Annotated[str | None, typer.Option(help="Stop before this time.")] = None,
    tf: Annotated[
        str, typer.Option(help="Bar timeframe of the data (confirm: of the candidates).")
    ] = "5m",
    walk_forward: Annotated[
        bool,
        typer.Option(
            "--walk-forward", help="Also report expanding walk-forward folds (see --folds)."
        ),
    ] = False,
    folds: Annotated[int, typer.Option(min=2, help="Walk-forward folds.")] = 4,
    calibration: Annotated[
        str, typer.Option(help="Entry/confirm calibration on validation: platt or isotonic.")
    ] = "platt",
    tune: Annotated[
        int,
        typer.Option(
            min=0, metavar="TRIALS", help="Optuna trials on the validation block (0 = off)."
        ),
    ] = 0,
    min_rows: Annotated[
        int | None,
        typer.Option(
            min=1, show_default=False,
            help=f"Refuse below this many rows (default 2,000; confirm {CONFIRM_MIN_ROWS}).",
        ),
    ] = None,
    window_tf: Annotated[
        str,
        typer.Option(help="Wait window timeframe.", envvar="DECILE_CONFIRM__WINDOW_TF",
                     rich_help_panel=_CONFIRM_PANEL),
    ] = FLEET_DEFAULTS["window_tf"],
    window_bars: Annotated[
        int,
        typer.Option(min=0, help="Wait window bars.", envvar="DECILE_CONFIRM__WINDOW_BARS",
                     rich_help_panel=_CONFIRM_PANEL),
    ] = FLEET_DEFAULTS["window_bars"],
    baseline_bars: Annotated[
        int,
        typer.Option(min=0, help="Baseline bars before the window.",
                     envvar="DECILE_CONFIRM__BASELINE_BARS", rich_help_panel=_CONFIRM_PANEL),
    ] = FLEET_DEFAULTS["baseline_bars"],
    atr_edges: Annotated[
        str,
        typer.Option(help="ATR-% bucket edges, comma-separated.",
                     envvar="DECILE_CONFIRM__ATR_EDGES", rich_help_panel=_CONFIRM_PANEL),
    ] = _FLEET_EDGES,
    theta: Annotated[
        float,
        typer.Option(help="Label: realised R >= theta.", rich_help_panel=_CONFIRM_PANEL),
    ] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Train model families on a chronological 70/15/15 split with an embargo, export
    them to ONNX, compare each with its production version, and register them as staging.

    A family that fails (feature health, leakage guard, ONNX parity, too few rows) is
    recorded as a failed attempt and production is left untouched; the exit status is 1
    when any family failed.

    --family confirm --from-db learns from the recorder's candidates and the realised R
    of their closed trades; it is not part of "all".
    """
    if data is not None and from_db:
        raise typer.BadParameter("choose --data or --from-db, not both")
    if calibration not in ("platt", "isotonic"):
        raise typer.BadParameter("platt or isotonic", param_hint="--calibration")
    cfg = settings()
    spec = DataSpec(
        path=data,
        from_db=from_db,
        dsn=cfg.postgres.dsn.get_secret_value(),
        tf=tf,
        symbols=tuple(s.strip() for s in symbols.split(",")) if symbols else None,
        start=start,
        end=end,
    )
    if family == CONFIRM:
        plan = _confirm_plan(
            spec, walk_forward or tune > 0, calibration, min_rows, theta,
            window_tf, window_bars, baseline_bars, atr_edges,
        )
        run = asyncio.run(_train(cfg, CONFIRM, CONFIRM_STEPS, partial(run_confirm, plan)))
    else:
        try:
            lgbm = TrainPlan(
                data=spec,
                families=ALL_FAMILIES if family == "all" else (family,),
                config=_config(calibration),
                walk_forward=folds if walk_forward else 0,
                tune_trials=tune,
                actor=actor(),
                **({"min_rows": min_rows} if min_rows else {}),
            )
        except ValueError as err:
            raise typer.BadParameter(f"{err} (or {CONFIRM})") from None
        total = 2 + len(lgbm.families) * steps_per_family(lgbm)
        run = asyncio.run(_train(cfg, ", ".join(lgbm.families), total, partial(run_training, lgbm)))
    if as_json:
        typer.echo(json.dumps(summary(run)))
    else:
        _print(run)
    raise typer.Exit(0 if run.ok else 1)


def _confirm_plan(
    spec: DataSpec,
    lgbm_only: bool,
    calibration: str,
    min_rows: int | None,
    theta: float,
    window_tf: str,
    window_bars: int,
    baseline_bars: int,
    atr_edges: str,
) -> ConfirmPlan:
    """The confirm plan, or a usage error naming what does not apply."""
    if spec.path is not None:
        raise typer.BadParameter(
            "--data is not for confirm: it learns from recorded candidates and their "
            "trades; use --from-db", param_hint="--data",
        )
    if not spec.from_db:
        raise typer.BadParameter(
            "confirm reads candidates, trades and bars from PostgreSQL: add --from-db",
            param_hint="--from-db",
        )
    if lgbm_only:
        raise typer.BadParameter("--walk-forward and --tune are for the LightGBM families")
    try:
        # "0.25,0.6", or the service's JSON form "[0.25, 0.6]"
        edges = tuple(float(e) for e in atr_edges.strip().strip("[]").split(",") if e.strip())
        config = ConfirmConfig.fleet(
            window_tf=window_tf, window_bars=window_bars, baseline_bars=baseline_bars,
            atr_edges=edges,
        )
        return ConfirmPlan(
            data=spec,
            config=config,
            theta=theta,
            fit=FitConfig(calibration="isotonic" if calibration == "isotonic" else "platt"),
            min_rows=min_rows or CONFIRM_MIN_ROWS,
        )
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None


def _config(calibration: str) -> TrainConfig:
    return TrainConfig(calibration="isotonic" if calibration == "isotonic" else "platt")


async def _train(cfg: TrainerSettings, label: str, total: int, work: Work) -> TrainingRun:
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ]
    async with opened(cfg) as o:
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task(f"training {label}", total=total)

            def step(what: str) -> None:
                bar.update(task, advance=1, description=what)

            run = await work(o.registry, o.artifacts, step)
            bar.update(task, completed=total, description="done")
    return run


def summary(run: TrainingRun) -> dict[str, Any]:
    """The run as plain data (``--json``, and the benchmark)."""
    return {
        "ok": run.ok,
        "bars": run.bars,
        "rows": run.rows,
        "seconds": round(run.seconds, 2),
        "rows_per_s": round(run.rows / run.seconds, 1) if run.seconds else None,
        "data_fingerprint": run.fingerprint,
        "families": [
            {
                "family": r.family,
                "seconds": round(r.seconds, 2),
                **(
                    {
                        "id": str(r.version.id),
                        "version": r.version.version,
                        "status": r.version.status,
                        "headline": headline(r.version.metrics),
                        "artifact": r.version.artifact_uri,
                    }
                    if r.version
                    else {"failure": r.failure}
                ),
            }
            for r in run.results
        ],
    }


def _print(run: TrainingRun) -> None:
    table = Table(title=f"{run.rows:,} rows from {run.bars:,} bars in {run.seconds:.1f} s")
    for col in ("family", "version", "status", "test", "seconds"):
        table.add_column(col)
    for r in run.results:
        if r.version:
            table.add_row(
                r.family,
                r.version.version,
                r.version.status,
                headline(r.version.metrics),
                f"{r.seconds:.1f}",
            )
        else:
            f = r.failure or {}
            table.add_row(
                r.family,
                "-",
                f"[red]failed at {f.get('stage')}[/red]",
                f"[red]{f.get('code')}: {f.get('message', '')[:160]}[/red]",
                f"{r.seconds:.1f}",
            )
    out.print(table)
    for r in run.results:
        if r.version:
            report = r.version.artifacts.get("report.md")
            if report is not None:
                out.print(f"{r.version.label}: report {report.uri}")


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel="Models")(train)
