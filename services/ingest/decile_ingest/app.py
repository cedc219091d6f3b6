"""The one bootstrap of ingest: a producer with no subscriptions."""

from __future__ import annotations

from collections.abc import Callable

from decile.events import BarBatch, QuarantinedBar
from decile.service import Runtime, create_runtime
from decile_ingest.pump import Progress, Pump
from decile_ingest.settings import IngestSettings
from decile_ingest.sources import Source, build_source


def create_app(
    settings: IngestSettings,
    source: Source | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> Runtime:
    rt = create_runtime(settings)
    rt.ready("source", False)
    src = source or build_source(settings.ingest)
    rt.produces(BarBatch, "md", "bars", "One cross-section per bar close and timeframe.")
    rt.produces(QuarantinedBar, "md", "quarantine", "A bar refused by data quality, with why.")

    @rt.after_start
    async def _pump() -> None:
        pump = Pump(rt.bus, src, settings.ingest, on_progress)
        rt.spawn(pump.run(), "pump")
        rt.ready("source")

    return rt
