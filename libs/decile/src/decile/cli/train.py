"""``decile train``: build new model versions from bars, without look-ahead.

Every version lands in ``staging`` with its report, metrics.json and ONNX
model in the artifact store; promote it with ``decile models promote``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from decile.cli.registry_access import actor, console, headline, opened, out, settings
from decile.training.models import TrainConfig
from decile.training.pipeline import (
    ALL_FAMILIES,
    DataSpec,
    TrainingRun,
    TrainPlan,
    run_training,
    steps_per_family,
)


def train(
    family: Annotated[
        str,
        typer.Option("--family", "-f", help="entry, risk, rr, offset, or all."),
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
    start: Annotated[str | None, typer.Option(help="First bar open time (ISO date).")] = None,
    end: Annotated[str | None, typer.Option(help="Stop before this bar open time.")] = None,
    tf: Annotated[str, typer.Option(help="Bar timeframe of the data.")] = "5m",
    walk_forward: Annotated[
        bool,
        typer.Option(
            "--walk-forward", help="Also report expanding walk-forward folds (see --folds)."
        ),
    ] = False,
    folds: Annotated[int, typer.Option(min=2, help="Walk-forward folds.")] = 4,
    calibration: Annotated[
        str, typer.Option(help="Entry calibration on validation: platt or isotonic.")
    ] = "platt",
    tune: Annotated[
        int,
        typer.Option(
            min=0, metavar="TRIALS", help="Optuna trials on the validation block (0 = off)."
        ),
    ] = 0,
    min_rows: Annotated[int, typer.Option(min=1, help="Refuse below this many rows.")] = 2_000,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Train model families on a chronological 70/15/15 split with an embargo, export
    them to ONNX, compare each with its production version, and register them as staging.

    A family that fails (feature health, leakage guard, ONNX parity, too few rows) is
    recorded as a failed attempt and production is left untouched; the exit status is 1
    when any family failed.
    """
    if data is not None and from_db:
        raise typer.BadParameter("choose --data or --from-db, not both")
    if calibration not in ("platt", "isotonic"):
        raise typer.BadParameter("platt or isotonic", param_hint="--calibration")
    families = ALL_FAMILIES if family == "all" else (family,)
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
    try:
        plan = TrainPlan(
            data=spec,
            families=families,
            config=_config(calibration),
            walk_forward=folds if walk_forward else 0,
            tune_trials=tune,
            min_rows=min_rows,
            actor=actor(),
        )
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    run = asyncio.run(_train(plan, cfg))
    if as_json:
        typer.echo(json.dumps(summary(run)))
    else:
        _print(run)
    raise typer.Exit(0 if run.ok else 1)


def _config(calibration: str) -> TrainConfig:
    return TrainConfig(calibration="isotonic" if calibration == "isotonic" else "platt")


async def _train(plan: TrainPlan, cfg: Any) -> TrainingRun:
    total = 2 + len(plan.families) * steps_per_family(plan)
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ]
    async with opened(cfg) as o:
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task(f"training {', '.join(plan.families)}", total=total)

            def step(what: str) -> None:
                bar.update(task, advance=1, description=what)

            run = await run_training(plan, o.registry, o.artifacts, step)
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
