"""The ingest domain: stable ids, quarantine evidence, higher timeframes."""

from __future__ import annotations

from decile.events import BarBatch, QuarantinedBar
from decile.market import loaders
from decile.market.resample import resample
from decile_ingest.pipeline import Ingestor
from decile_ingest.sources import EVENT_TIME

WEEK = ("2021-02-08T00:00:00Z", "2021-02-15T00:00:00Z")


def run(ingestor: Ingestor) -> list[BarBatch]:
    bars = loaders.load_demo(start=WEEK[0], end=WEEK[1])
    events = []
    for _, cycle in loaders.iter_cycles(bars):
        events += ingestor.feed(cycle, EVENT_TIME).events
    events += ingestor.flush().events
    return [e for e in events if isinstance(e, BarBatch)]


def test_replaying_the_same_data_twice_gives_the_same_event_ids() -> None:
    first = run(Ingestor("5m", ("1h",), 0, "demo"))
    second = run(Ingestor("5m", ("1h",), 0, "demo"))
    assert [e.id for e in first] == [e.id for e in second]
    assert len({e.id for e in first}) == len(first)


def test_higher_timeframe_batches_equal_the_batch_resample_of_the_same_bars() -> None:
    out = [e for e in run(Ingestor("5m", ("1h",), 0, "demo")) if e.tf == "1h"]
    want = resample(loaders.load_demo(start=WEEK[0], end=WEEK[1]), "1h")
    got_rows = sum(len(e.symbols) for e in out)
    assert got_rows == len(want)
    first = out[0]
    mask = want.ts == int(first.bar_time.timestamp() * 1000)
    assert first.symbols == want.take(mask).row_names()
    assert (first.values == want.take(mask).ohlcv()).all()


def test_an_invalid_symbol_is_quarantined_not_crashed_on() -> None:
    import numpy as np

    from decile.market.bars import Bars

    one = np.ones(2)
    bars = Bars.from_arrays(np.array(["BRK.B", "OK/USDT"]), np.zeros(2, dtype=np.int64), one,
                            one * 2, one * 0.5, one, one)
    out = Ingestor("5m", (), 0, "t").feed(bars, EVENT_TIME)
    quarantined = [e for e in out.events if isinstance(e, QuarantinedBar)]
    assert [q.code.value for q in quarantined] == ["INVALID_SYMBOL"]
    assert out.quarantined == {"INVALID_SYMBOL": 1}
