"""Rebuild the feature engine after a start: the MD stream replayed up to the ack floor."""

from __future__ import annotations

from decile.bus import Bus
from decile.events import BarBatch
from decile.rebuild import replay_to_floor
from decile_feature.engine import Featuriser
from decile_feature.handlers import to_bars


async def rebuild(bus: Bus, durable: str, tf: str, featuriser: Featuriser) -> int:
    """Replay cycles ``<= ack floor`` of ``durable`` into ``featuriser``; returns how many."""

    def apply(batch: BarBatch) -> None:
        featuriser.apply(batch.id, to_bars(batch))

    return await replay_to_floor(bus, stream="MD", subject=bus.subjects.md_bars(tf),
                                 durable=durable, event=BarBatch, apply=apply)
