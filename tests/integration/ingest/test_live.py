"""BinanceSource against a loopback fake exchange: outages, faulty frames, the ingest pipeline.

The fake is driven bar by bar and the client judges closure by the fake's
clock, so outcomes are deterministic; waits are bounded, never asserted on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from types import TracebackType
from typing import Any

import numpy as np
from fake_binance import FakeBinance

from decile.events import BarBatch
from decile.market.bars import Bars
from decile.market.generator import generate
from decile.metrics import REGISTRY
from decile_ingest.live import BinanceSource
from decile_ingest.pipeline import Ingestor
from decile_ingest.sources import Chunk

TF = "5m"
TF_MS = 300_000
SYMBOLS = ("BTC/USDT", "ETH/USDT")
WAIT_S = 10.0


def market(n_bars: int) -> Bars:
    """Two realistic synthetic series under real pair names."""
    g = generate(n_symbols=2, n_bars=n_bars, tf=TF, seed=11)
    return Bars(SYMBOLS, g.code, g.ts, g.open, g.high, g.low, g.close, g.volume)


def live_source(fake: FakeBinance, **kw: Any) -> BinanceSource:
    return BinanceSource(SYMBOLS, TF, fake.ws_url, fake.rest_url, clock=fake.clock,
                         backoff_initial=0.01, backoff_max=0.05, **kw)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Collector:
    """Runs a source in a task and keeps every chunk it yields."""

    def __init__(self, source: BinanceSource, since_ms: int | None = None) -> None:
        self.source, self.since_ms = source, since_ms
        self.chunks: list[Chunk] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async for chunk in self.source.chunks(self.since_ms):
            self.chunks.append(chunk)

    async def __aenter__(self) -> Collector:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self._task, WAIT_S)

    @property
    def count(self) -> int:
        return sum(len(c.bars) for c in self.chunks)

    async def until(self, n_bars: int) -> None:
        """Until ``n_bars`` bars were yielded; a crashed source raises here, not a timeout."""
        assert self._task is not None
        async with asyncio.timeout(WAIT_S):
            while self.count < n_bars:
                if self._task.done():
                    self._task.result()
                    raise AssertionError("source ended")
                await asyncio.sleep(0.005)

    def bars(self) -> Bars:
        return Bars.concat(c.bars for c in self.chunks)


def assert_each_closed_bar_once_in_order(got: Collector, fake: FakeBinance, last: int) -> None:
    bars = got.bars()
    assert bars.sort().equals(fake.bars_until(last)), "every closed bar once, final values"
    for s in SYMBOLS:
        assert np.all(np.diff(bars.select([s]).ts) > 0), f"{s} in order"
    assert all(int(c.bars.ts.max()) + TF_MS <= c.now_ms for c in got.chunks), "no open candle"


def kline_frame(**k: object) -> str:
    """A well-formed BTCUSDT closed-candle frame with ``k`` fields overridden or removed (None)."""
    fields: dict[str, object] = {"t": 0, "T": TF_MS - 1, "s": "BTCUSDT", "i": TF, "o": "1.0",
                                 "c": "1.5", "h": "2.0", "l": "0.5", "v": "10", "x": True}
    fields |= k
    kline = {key: v for key, v in fields.items() if v is not None}
    return json.dumps({"stream": "btcusdt@kline_5m",
                       "data": {"e": "kline", "E": 1, "s": "BTCUSDT", "k": kline}})


MALFORMED: tuple[str | bytes, ...] = (
    "{not json",
    b"\xff\xfe\x00binary garbage",
    '{"result": null, "id": 1}',
    "[1, 2, 3]",
    '{"stream": "btcusdt@kline_5m", "data": {"e": "trade", "s": "BTCUSDT"}}',
    kline_frame(o="abc"),
    kline_frame(c=None),
    kline_frame(t="0"),
    kline_frame(x="true"),
    kline_frame(s="DOGEUSDT"),
    kline_frame(i="1m"),
)


async def run_outage(fake: FakeBinance, got: Collector) -> None:
    """Bars 0-3 streamed, 4-6 close while the exchange is unreachable, 7-11 streamed."""
    await fake.wait_connections(1)
    for i in range(4):
        await fake.close_bar(i)
    await got.until(8)
    await fake.go_down()
    for i in range(4, 7):
        await fake.close_bar(i)  # nobody listening: these exist only in REST
    await asyncio.wait_for(fake.refused.wait(), WAIT_S)  # the client knocked at least once
    fake.come_up()
    await fake.wait_connections(2)
    for i in range(7, 12):
        await fake.close_bar(i)
    await got.until(24)


async def test_every_closed_bar_is_yielded_once_in_order_across_a_disconnect() -> None:
    reconnects = metric("decile_ingest_reconnects_total")
    async with FakeBinance(market(12), TF) as fake, Collector(live_source(fake)) as got:
        await run_outage(fake, got)
    assert fake.subscriptions == [["btcusdt@kline_5m", "ethusdt@kline_5m"]] * 2
    assert_each_closed_bar_once_in_order(got, fake, 11)
    assert metric("decile_ingest_reconnects_total") >= reconnects + 2  # the drop, a refusal
    after = [q for n, q in fake.rest_queries if n == 2 and q["symbol"] == "BTCUSDT"]
    assert int(after[0]["startTime"]) == fake.times[4], "resumes after the last yielded bar"


async def test_a_failing_backfill_is_retried_until_no_bar_is_missing() -> None:
    async with FakeBinance(market(12), TF) as fake, Collector(live_source(fake)) as got:
        fake.fail_rest = 3  # the first backfills after the outage answer 503
        await run_outage(fake, got)
    assert fake.fail_rest == 0
    assert_each_closed_bar_once_in_order(got, fake, 11)


async def test_repeated_late_and_malformed_frames_neither_crash_nor_repeat_a_bar() -> None:
    bad = metric("decile_ingest_bad_frames_total", channel="ws")
    async with FakeBinance(market(6), TF) as fake, Collector(live_source(fake)) as got:
        await fake.wait_connections(1)
        await fake.close_bar(0, repeat=3)
        for frame in MALFORMED:
            await fake.send(frame)
        await fake.close_bar(1, stream=False)  # its frames come late...
        await fake.close_bar(2)  # ...after bar 2's: the skipped bar is fetched over REST
        await fake.send_closed(1)
        await fake.send_closed(0)
        await fake.close_bar(3)
        await got.until(8)
        await fake.close_bar(4)
        await got.until(10)
    assert_each_closed_bar_once_in_order(got, fake, 4)
    assert metric("decile_ingest_bad_frames_total", channel="ws") - bad == len(MALFORMED)
    assert fake.connections == 1, "bad frames do not cost the connection"


async def test_a_resume_from_since_backfills_every_closed_bar_page_by_page() -> None:
    async with FakeBinance(market(9), TF) as fake:
        for i in range(6):
            await fake.close_bar(i)  # closed before the client starts
        source = live_source(fake, page_limit=2)
        async with Collector(source, since_ms=fake.times[0]) as got:
            await got.until(12)
            for i in range(6, 9):
                await fake.close_bar(i)
            await got.until(18)
    assert_each_closed_bar_once_in_order(got, fake, 8)
    starts = [int(q["startTime"]) for _, q in fake.rest_queries if q["symbol"] == "BTCUSDT"]
    assert starts == [fake.times[i] for i in (0, 2, 4, 6)]  # the last page holds the open bar


async def test_live_bars_through_the_ingestor_become_the_fakes_cycles() -> None:
    async with FakeBinance(market(12), TF) as fake:
        source = live_source(fake)
        async with Collector(source) as got:
            await run_outage(fake, got)
    ingestor = Ingestor(TF, (), grace_ms=10_000, source=source.name)
    outcomes = [ingestor.feed(c.bars, c.now_ms) for c in got.chunks] + [ingestor.flush()]
    batches = [b for o in outcomes for _, b in o.cycles]
    assert not any(o.quarantined or o.gap_bars for o in outcomes)
    assert all(isinstance(b, BarBatch) and not b.missing for b in batches)
    expected = fake.bars_until(11)
    assert [int(b.bar_time.timestamp() * 1000) for b in batches] == list(fake.times)
    for b in batches:
        ts = int(b.bar_time.timestamp() * 1000)
        assert Bars.from_ohlcv(b.symbols, ts, b.values).equals(expected.between(ts, ts + 1))
