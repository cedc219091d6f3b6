"""A corpus of bad bars, one per quality rule, through ingest onto real JetStream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import numpy as np

from decile.bus import provision_streams
from decile.events import BarBatch
from decile.market.bars import Bars
from decile.service import create_runtime
from decile.testing.probes import stream_messages
from decile_ingest.pump import Pump
from decile_ingest.settings import IngestSettings
from decile_ingest.sources import Chunk

T0 = 1_612_137_600_000  # 2021-02-01 00:00 UTC
M5 = 300_000
GOOD = (100.0, 110.0, 90.0, 105.0, 5.0)


def bars(rows: list[tuple[str, int, tuple[float, ...]]]) -> Bars:
    sym = np.array([r[0] for r in rows])
    ts = np.array([r[1] for r in rows], dtype=np.int64)
    v = np.array([r[2] for r in rows], dtype=np.float64)
    return Bars.from_arrays(sym, ts, v[:, 0], v[:, 1], v[:, 2], v[:, 3], v[:, 4])


class Scripted:
    name = "scripted"

    def __init__(self, chunks: list[Chunk]) -> None:
        self._chunks = chunks

    async def chunks(self, since_ms: int | None) -> AsyncIterator[Chunk]:
        for c in self._chunks:
            yield c


CORPUS = {
    "NON_FINITE": ("AAA/USDT", T0 + 2 * M5, (100.0, float("nan"), 90.0, 105.0, 5.0)),
    "NON_POSITIVE_PRICE": ("AAA/USDT", T0 + 2 * M5, (0.0, 110.0, 0.0, 105.0, 5.0)),
    "NEGATIVE_VOLUME": ("AAA/USDT", T0 + 2 * M5, (100.0, 110.0, 90.0, 105.0, -1.0)),
    "HIGH_LOW_INCONSISTENT": ("AAA/USDT", T0 + 2 * M5, (100.0, 104.0, 90.0, 105.0, 5.0)),
    "MISALIGNED": ("AAA/USDT", T0 + 2 * M5 + 1_000, GOOD),
    "DUPLICATE": ("BBB/USDT", T0 + M5, GOOD),
    "OUT_OF_ORDER": ("BBB/USDT", T0 - M5, GOOD),
    "INVALID_SYMBOL": ("BRK.B", T0 + 2 * M5, GOOD),
}


async def test_each_bad_bar_is_quarantined_with_its_reason_and_good_bars_flow(
    nats_url: str, nats_namespace: str
) -> None:
    settings = IngestSettings(nats={"url": nats_url, "namespace": nats_namespace},
                              ingest={"higher": ()})
    rt = create_runtime(settings)
    await rt.broker.connect()
    await provision_streams(rt.bus.js, rt.subjects, settings.nats)
    wall = T0 + 3 * M5 + 10  # "now" for the live-like chunk: the T0+3*M5 bar is still open
    script = [
        Chunk(bars([("AAA/USDT", T0, GOOD), ("BBB/USDT", T0, GOOD)]), 2**62),
        Chunk(bars([("AAA/USDT", T0 + M5, GOOD), ("BBB/USDT", T0 + M5, GOOD)]), 2**62),
        Chunk(bars([CORPUS[k] for k in CORPUS]), 2**62),
        Chunk(bars([("AAA/USDT", T0 + 3 * M5, GOOD)]), wall),  # unfinished
    ]
    progress = await Pump(rt.bus, Scripted(script), settings.ingest).run()

    letters = await stream_messages(rt.bus.js, rt.subjects.stream("MD"),
                                    rt.subjects.all("md", "quarantine"))
    by_reason = {m.subject.rsplit(".", 1)[1]: json.loads(m.data) for m in letters}
    assert set(by_reason) == {*CORPUS, "UNFINISHED"}
    assert by_reason["NON_FINITE"]["values"]["high"] == "nan"  # the evidence, kept
    assert by_reason["OUT_OF_ORDER"]["values"]["last_ts"] == T0 + M5
    assert by_reason["INVALID_SYMBOL"]["symbol"] == "BRK.B"
    assert all(q["source"] == "scripted" for q in by_reason.values())
    assert progress.quarantined == len(CORPUS) + 1

    from decile import codec

    cycles = [codec.decode(m.data, dict(m.headers or {}))
              for m in await stream_messages(rt.bus.js, rt.subjects.stream("MD"),
                                             rt.subjects.md_bars("5m"))]
    assert all(isinstance(c, BarBatch) for c in cycles)
    assert [len(c.symbols) for c in cycles] == [2, 2]  # the two clean cycles, nothing else
    await rt.broker.stop()
