"""First-run models for ``decile up``: a fleet whose registry has no production entry
model scores nothing, so the first run trains one.

Every family is trained on the bundled Binance sample with the same pipeline as
``decile train`` and walked through the same gate (staging -> shadow ->
production); a family that fails its gate stays in staging and the run says
why (on the bundled sample the ``rr`` head does not beat its best constant).
Nothing happens when a production entry model exists, so later runs keep what
an operator promoted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from decile.registry import LocalArtifacts, PromotionRefused, Registry
from decile.training.pipeline import TrainPlan, run_training

Say = Callable[[str], None]


async def ensure_models(dsn: str, artifacts_root: Path, say: Say) -> None:
    """Train and promote the families if no production entry model exists yet."""
    registry = await Registry.connect(dsn)
    try:
        if await registry.production("entry") is not None:
            return
        say("no production entry model yet: training every family on the bundled sample")
        run = await run_training(TrainPlan(actor="decile up"), registry,
                                 LocalArtifacts(artifacts_root))
        for result in run.results:
            if result.version is None:
                failure = result.failure or {}
                say(f"{result.family}: training failed: {failure.get('code')}")
                continue
            label = result.version.label
            try:
                await registry.promote(result.version.id, "shadow", actor="decile up")
                await registry.promote(result.version.id, "production", actor="decile up")
                say(f"{label} promoted to production")
            except PromotionRefused as err:
                say(f"{label} stays in staging: {err}")
    finally:
        await registry.close()


def bootstrap(dsn: str, artifacts_root: Path, say: Say) -> None:
    """Blocking form for the supervisor (which runs before its own event loop)."""
    asyncio.run(ensure_models(dsn, artifacts_root, say))
