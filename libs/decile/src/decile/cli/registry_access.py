"""What ``decile train`` and ``decile models`` share: settings and an open registry.

The registry lives in PostgreSQL (``DECILE_POSTGRES__DSN``); artifacts on disk
under ``DECILE_ARTIFACTS__ROOT`` (default ``.state/models``) or, with
``DECILE_ARTIFACTS__BACKEND=nats``, in the JetStream Object Store bucket
``DECILE_ARTIFACTS__BUCKET`` on ``DECILE_NATS__URL``.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import nats
import typer
from rich.console import Console

from decile.config import ServiceSettings, load_settings
from decile.registry import ArtifactSettings, ArtifactStore, GateConfig, Registry, open_artifacts

console = Console(stderr=True)
out = Console()


class TrainerSettings(ServiceSettings):
    """The trainer job's settings: the shared sections plus where artifacts go."""

    service: str = "trainer"
    artifacts: ArtifactSettings = ArtifactSettings()


@dataclass(frozen=True, slots=True)
class Opened:
    registry: Registry
    artifacts: ArtifactStore


def settings() -> TrainerSettings:
    return load_settings(TrainerSettings)


def actor() -> str:
    """Who ran the command, for the promotions audit trail."""
    try:
        return os.environ.get("DECILE_ACTOR") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@asynccontextmanager
async def opened(cfg: TrainerSettings, gate: GateConfig | None = None) -> AsyncIterator[Opened]:
    """The registry and the artifact store, closed on exit; one clear line if unreachable."""
    dsn = cfg.postgres.dsn.get_secret_value()
    try:
        registry = await Registry.connect(dsn, gate=gate)
    except (OSError, TimeoutError) as err:
        console.print(f"[red]cannot reach PostgreSQL ({_host(dsn)}): {err}[/red]")
        raise typer.Exit(2) from None
    nc = None
    try:
        if cfg.artifacts.backend == "nats":
            nc = await nats.connect(cfg.nats.url.split(","), connect_timeout=5)
        yield Opened(registry, await open_artifacts(cfg.artifacts, nc))
    finally:
        await registry.close()
        if nc is not None:
            await nc.close()


def _host(dsn: str) -> str:
    """The DSN without credentials, for error messages."""
    return dsn.split("@", 1)[-1]


def headline(metrics: dict[str, Any]) -> str:
    """One line of test metrics for tables: AUC/ECE/top decile, or pinball vs constant."""
    test = metrics.get("metrics", {}).get("test", {})
    if "auc" in test:
        sel = metrics.get("metrics", {}).get("selectivity_test", {}).get("all", {})
        top = (sel.get("top_decile") or {}).get("mean_r")
        top_s = f", top decile {top:+.3f} R" if isinstance(top, float) else ""
        return f"AUC {test['auc']:.3f}, ECE {test.get('ece', float('nan')):.3f}{top_s}"
    if "pinball" in test:
        return f"pinball {test['pinball']:.4f} (constant {test['pinball_best_constant']:.4f})"
    return ""
