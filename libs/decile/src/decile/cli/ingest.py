"""``decile replay`` and ``decile ingest --live``: the ingest pipeline in this process, with a
progress bar showing bars/s and the position in market time.

They publish to the same subjects as the ingest service (and resume the same way), so a
running recorder or feature service sees no difference.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from decile.config import load_settings

console = Console(stderr=True)


def _ingest() -> Any:
    try:
        import decile_ingest.app as app_module
        import decile_ingest.settings as settings_module
    except ImportError:
        console.print("[red]the ingest service is not installed (package decile-ingest)[/red]")
        raise typer.Exit(2) from None
    return app_module, settings_module


def _run(section: dict[str, Any], total_ms: tuple[int, int] | None) -> None:
    app_module, settings_module = _ingest()
    settings = load_settings(settings_module.IngestSettings, ingest=section,
                             obs={"http_port": 0, "log_level": "WARNING"})
    columns = [TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[when]}"),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("ingest", total=(total_ms[1] - total_ms[0]) if total_ms else None,
                            when="", rate="")
        start = time.monotonic()

        def on_progress(p: Any) -> None:
            if p.last_ts is None:
                return
            done = (p.last_ts - total_ms[0]) if total_ms else None
            rate = p.bars / max(time.monotonic() - start, 1e-9)
            when = datetime.fromtimestamp(p.last_ts / 1000, UTC).strftime("%Y-%m-%d %H:%M")
            bar.update(task, completed=done, when=when,
                       rate=f"{rate:,.0f} bars/s, {p.bars:,} bars, {p.quarantined:,} quarantined")
            if p.done:
                rt.app.exit()

        rt = app_module.create_app(settings, on_progress=on_progress)
        asyncio.run(rt.run())


def replay(
    path: Annotated[Path, typer.Argument(help="Parquet, CSV or feather file, or a directory")],
    speed: Annotated[float, typer.Option(help="0 = as fast as possible, else x real time")] = 0,
    start: Annotated[str | None, typer.Option(help="first bar time (ISO or ms), inclusive")] = None,
    end: Annotated[str | None, typer.Option(help="last bar time (ISO or ms), exclusive")] = None,
    symbols: Annotated[str | None, typer.Option(help="comma-separated, e.g. BTC/USDT,ETH/USDT")]
    = None,
) -> None:
    """Replay a file of bars onto md.bars.<tf> (quality-checked, in event-time order)."""
    from decile.market import loaders

    if not path.exists():
        console.print(f"[red]{path} does not exist[/red]")
        raise typer.Exit(2)
    try:
        bars = loaders.read_bars(path, start=start, end=end,
                                 symbols=symbols.split(",") if symbols else None)
    except loaders.LoadError as err:
        console.print(f"[red]refused: {err}[/red]")
        raise typer.Exit(2) from None
    span = (int(bars.ts.min()), int(bars.ts.max())) if len(bars) else None
    section = {"source": "replay", "path": str(path), "speed": speed, "start": start, "end": end,
               "symbols": tuple(symbols.split(",")) if symbols else None}
    _run(section, span)


def ingest(
    live: Annotated[str, typer.Option(help="comma-separated symbols, e.g. BTC/USDT,ETH/USDT")],
    tf: Annotated[str, typer.Option(help="kline interval")] = "5m",
) -> None:
    """Stream closed Binance klines (websocket, REST backfill after reconnects) onto the bus."""
    _run({"source": "live", "live_symbols": tuple(live.split(",")), "tf": tf}, None)


def register(app: typer.Typer) -> None:
    app.command()(replay)
    app.command()(ingest)
