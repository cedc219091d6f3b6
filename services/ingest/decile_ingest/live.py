"""Live bars from Binance: closed klines over a websocket, holes healed over REST.

Why both: the websocket reports a candle's close within milliseconds but knows
nothing of what closed while we were disconnected (and Binance now and then
skips a final ``x: true`` frame); REST remembers. After every (re)connect, and
whenever a symbol's stream jumps past a bar, the missing closed bars are
fetched over REST, so no closed bar is lost to a disconnect. Each bar is
yielded at most once and in order per symbol: :class:`Cursor` remembers the
last open time yielded per symbol, so a backfill overlapping the stream, a
repeated frame or a late (out-of-order) frame yields nothing. A still-forming
candle is never yielded: a frame must say ``x: true``, a REST row must be
closed by the clock (``open + tf <= now``, the quality check's own rule).

Chunks carry ``now_ms=clock()``. The wall clock is judged against the
exchange's: a local clock running behind Binance's can make a just-closed bar
look UNFINISHED downstream, so run ingest on an NTP-synced host.

A reader task drains the socket for the whole connection and passes on closed
candles only, so pings are answered and a close never stalls while we backfill
or the consumer is slow; the open updates (the bulk of the traffic) die there.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from itertools import groupby
from typing import Final

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from decile.market.bars import Bars
from decile.market.timeframes import Timeframe, align, parse
from decile.metrics import counter
from decile.obs import get_logger
from decile_ingest.sources import Chunk

__all__ = [
    "BAD_FRAMES",
    "RECONNECTS",
    "BadFrame",
    "BinanceSource",
    "Cursor",
    "Kline",
    "backoff_delay",
    "exchange_symbol",
    "parse_frame",
    "parse_row",
    "to_bars",
]

log = get_logger(__name__)

RECONNECTS = counter(
    "decile_ingest_reconnects_total", "Live feed reconnects after a socket error or close", []
)
BAD_FRAMES = counter(
    "decile_ingest_bad_frames_total", "Live frames or REST rows skipped as malformed", ["channel"]
)

KLINES_PATH: Final = "/api/v3/klines"
PAGE_LIMIT: Final = 1000  # Binance's maximum rows per klines request
MAX_STREAMS: Final = 1024  # Binance's limit of streams per websocket connection
REST_TIMEOUT_S: Final = 10.0
OPEN_TIMEOUT_S: Final = 10.0
PREVIEW_CHARS: Final = 200


class BadFrame(ValueError):
    """A frame or row that is not one of our klines: counted and skipped, never fatal."""


# Worth a reconnect: network, handshake, close, HTTP and garbled-response failures.
# A bad URL (InvalidURI, httpx.InvalidURL) is a configuration error and propagates.
TRANSIENT: Final = (
    ConnectionClosed, InvalidHandshake, OSError, TimeoutError, httpx.HTTPError,
    json.JSONDecodeError, UnicodeDecodeError, BadFrame,
)


@dataclass(frozen=True, slots=True)
class Kline:
    """One candle in Decile terms: our symbol name, open time (ms), float values."""

    symbol: str
    ts: int
    close_ms: int  # Binance's close time: ts + tf - 1
    open: float
    high: float
    low: float
    close: float
    volume: float
    closed: bool


def exchange_symbol(name: str) -> str:
    """``BTC/USDT`` -> ``BTCUSDT``: Binance's spelling of a pair (REST and frames)."""
    return name.replace("/", "").upper()


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def _int(v: object, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise BadFrame(f"{what} is not an integer: {v!r}")
    return v


def _num(v: object, what: str) -> float:
    """Binance sends prices as decimal strings; NaN passes on to the quality check as evidence."""
    if isinstance(v, bool) or not isinstance(v, str | int | float):
        raise BadFrame(f"{what} is not a number: {v!r}")
    try:
        return float(v)
    except ValueError:
        raise BadFrame(f"{what} is not a number: {v!r}") from None


def _kline(symbol: str, t: object, end: object, o: object, h: object, lo: object, c: object,
           v: object, closed: bool) -> Kline:
    return Kline(symbol, _int(t, "open time"), _int(end, "close time"), _num(o, "open"),
                 _num(h, "high"), _num(lo, "low"), _num(c, "close"), _num(v, "volume"), closed)


def parse_frame(raw: str | bytes, names: Mapping[str, str], tf: Timeframe) -> Kline:
    """One kline message (combined-stream envelope or bare); ``names`` maps BTCUSDT -> BTC/USDT.

    Raises :class:`BadFrame` for anything else: bad JSON, another event, a
    missing or mistyped field, a symbol we did not subscribe to, another interval.
    """
    try:
        msg = json.loads(raw)
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError alike
        raise BadFrame(f"not JSON: {err}") from None
    data = msg.get("data", msg) if isinstance(msg, dict) else None
    k = data.get("k") if isinstance(data, dict) and data.get("e") == "kline" else None
    if not isinstance(k, dict):
        raise BadFrame("not a kline event")
    if k.get("i") != tf.value:
        raise BadFrame(f"interval {k.get('i')!r}, expected {tf.value!r}")
    sym = k.get("s")
    if not isinstance(sym, str) or sym not in names:
        raise BadFrame(f"symbol {sym!r} not subscribed")
    closed = k.get("x")
    if not isinstance(closed, bool):
        raise BadFrame(f"closed flag is not a boolean: {closed!r}")
    try:
        return _kline(names[sym], k["t"], k["T"], k["o"], k["h"], k["l"], k["c"], k["v"], closed)
    except KeyError as err:
        raise BadFrame(f"missing field {err}") from None


def parse_row(row: object, symbol: str, tf: Timeframe, now_ms: int) -> Kline:
    """One REST klines row ``[open_ms, o, h, l, c, v, close_ms, ...]`` of ``symbol``.

    REST has no closed flag and its last row is usually the forming candle:
    closed means ``open + tf <= now_ms``, the rule the quality check applies.
    """
    if not isinstance(row, list) or len(row) < 7:
        raise BadFrame("kline row is not a list of at least 7 fields")
    t, o, h, lo, c, v, end = row[:7]
    ts = _int(t, "open time")
    return _kline(symbol, ts, end, o, h, lo, c, v, closed=ts + tf.ms <= now_ms)


def to_bars(klines: Sequence[Kline]) -> Bars:
    return Bars.from_arrays(
        [k.symbol for k in klines], [k.ts for k in klines], [k.open for k in klines],
        [k.high for k in klines], [k.low for k in klines], [k.close for k in klines],
        [k.volume for k in klines],
    )


def backoff_delay(attempt: int, initial: float, maximum: float, rand: float) -> float:
    """Seconds before reconnect ``attempt`` (1, 2...): doubling up to ``maximum``, equal jitter.

    ``rand`` in [0, 1) spreads the second half, so a fleet cut off together
    does not reconnect in lockstep.
    """
    d = min(maximum, initial * 2.0 ** min(attempt - 1, 32))
    return d / 2 + d / 2 * rand


@dataclass
class Cursor:
    """What one run has yielded: the last open time per symbol, and where backfills start.

    ``floor`` is where a symbol with nothing yielded yet resumes: ``since_ms``
    or the open of the bar forming when the run started.
    """

    tf_ms: int
    floor: int
    last: dict[str, int] = field(default_factory=dict)

    def next_ts(self, symbol: str) -> int:
        last = self.last.get(symbol)
        return self.floor if last is None else last + self.tf_ms

    def take(self, klines: Iterable[Kline]) -> list[Bars]:
        """Closed bars not yielded before, one cross-section per open time, oldest first.

        Anything at or before a symbol's last yielded bar is a repeat or arrived
        too late to keep order: dropped here, so downstream sees each bar once.
        """
        fresh = []
        for k in sorted(klines, key=lambda k: (k.ts, k.symbol)):
            last = self.last.get(k.symbol)
            if k.closed and (last is None or k.ts > last):
                self.last[k.symbol] = k.ts
                fresh.append(k)
        return [to_bars(list(g)) for _, g in groupby(fresh, key=lambda k: k.ts)]


class BinanceSource:
    """Binance spot klines of ``symbols`` (``BTC/USDT``...), reconnecting forever.

    One combined-stream websocket for all symbols (Binance allows 1024 streams
    on a connection) plus REST for backfills. Ends only when the consumer stops.
    """

    def __init__(
        self,
        symbols: tuple[str, ...],
        tf: str,
        ws_url: str,
        rest_url: str,
        *,
        clock: Callable[[], int] = wall_ms,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        page_limit: int = PAGE_LIMIT,
    ) -> None:
        if not symbols:
            raise ValueError("BinanceSource needs at least one symbol")
        if len(symbols) > MAX_STREAMS:
            raise ValueError(f"{len(symbols)} symbols: Binance allows {MAX_STREAMS} streams")
        if not 0 < backoff_initial <= backoff_max:
            raise ValueError("need 0 < backoff_initial <= backoff_max")
        if not 1 <= page_limit <= PAGE_LIMIT:
            raise ValueError(f"page_limit must be within 1..{PAGE_LIMIT}")
        self.symbols = symbols
        self.tf = parse(tf)
        self.names = {exchange_symbol(s): s for s in symbols}  # BTCUSDT -> BTC/USDT
        if len(self.names) != len(symbols):
            raise ValueError(f"symbols collide on the exchange: {symbols}")
        streams = "/".join(f"{ex.lower()}@kline_{self.tf.value}" for ex in self.names)
        self.stream_url = f"{ws_url.rstrip('/')}/stream?streams={streams}"
        self.rest_url = rest_url.rstrip("/")
        self.clock = clock
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self.page_limit = page_limit
        self.name = f"binance:{self.tf.value}"

    async def chunks(self, since_ms: int | None) -> AsyncIterator[Chunk]:
        """Closed bars as they close; after each (re)connect, first what closed meanwhile."""
        floor = since_ms if since_ms is not None else align(self.clock(), self.tf)
        cur = Cursor(self.tf.ms, floor)
        attempt = 0
        async with httpx.AsyncClient(base_url=self.rest_url, timeout=REST_TIMEOUT_S) as http:
            while True:
                healthy = asyncio.Event()  # set by the first good frame of a connection
                reason: object = "session ended"
                try:
                    async with (
                        connect(self.stream_url, open_timeout=OPEN_TIMEOUT_S) as ws,
                        aclosing(self._session(ws, http, cur, healthy)) as session,
                    ):
                        async for bars in session:
                            yield Chunk(bars, now_ms=self.clock())
                except TRANSIENT as err:
                    reason = err
                attempt = 1 if healthy.is_set() else attempt + 1  # a working feed starts afresh
                delay = backoff_delay(attempt, self.backoff_initial, self.backoff_max,
                                      random.random())
                RECONNECTS.inc()
                log.warning("live feed reconnecting", source=self.name, attempt=attempt,
                            delay_s=round(delay, 3), error=repr(reason))
                await asyncio.sleep(delay)

    async def _session(self, ws: ClientConnection, http: httpx.AsyncClient, cur: Cursor,
                       healthy: asyncio.Event) -> AsyncGenerator[Bars, None]:
        """One connection: the backfill, then closed candles; raises when the socket ends.

        A symbol whose stream jumps past a bar gets the skipped bars from REST first.
        """
        inbox: asyncio.Queue[Kline | Exception] = asyncio.Queue()
        reader = asyncio.create_task(self._read(ws, inbox, healthy))
        try:
            backfill = await self._backfill(http, cur)
            log.info("live feed connected", source=self.name,
                     backfilled=sum(len(b) for b in backfill))
            for bars in backfill:
                yield bars
            while True:
                k = await inbox.get()
                if isinstance(k, Exception):
                    raise k
                expected = cur.next_ts(k.symbol)
                skipped: list[Kline] = []
                if k.ts > expected:
                    skipped = await self._klines(http, k.symbol, expected, k.ts - 1, self.clock())
                    log.info("live feed gap filled", source=self.name, symbol=k.symbol,
                             from_ts=expected, to_ts=k.ts, bars=len(skipped))
                for bars in cur.take([*skipped, k]):
                    yield bars
        finally:
            await ws.close()  # while the reader still drains, or the close handshake stalls
            reader.cancel()

    async def _read(self, ws: ClientConnection, inbox: asyncio.Queue[Kline | Exception],
                    healthy: asyncio.Event) -> None:
        """Drain the socket for the whole connection, passing on closed candles only.

        Why a task: the socket is read even while we backfill or the consumer is
        slow, so pings are answered and the library's bounded frame queue never
        fills (a full one stops reading, and closing then waits out close_timeout).
        Open updates, the bulk of the traffic, are dropped here, so the inbox
        holds only the few closed candles per symbol not yet consumed.
        """
        try:
            async for raw in ws:
                try:
                    k = parse_frame(raw, self.names, self.tf)
                except BadFrame as err:
                    self._bad("ws", err, raw)
                    continue
                healthy.set()
                if k.closed:
                    inbox.put_nowait(k)
            inbox.put_nowait(ConnectionError("websocket closed by the server"))
        except Exception as err:  # a dropped socket, or a bug: the session raises it
            inbox.put_nowait(err)

    async def _backfill(self, http: httpx.AsyncClient, cur: Cursor) -> list[Bars]:
        """Every bar closed since each symbol's last yielded one, one cross-section per time.

        Symbols are fetched one after another (Binance weighs requests), then
        merged, so the assembler downstream sees whole cycles, not one symbol's
        history after another's.
        """
        now = self.clock()
        found: list[Kline] = []
        for symbol in self.symbols:
            start = cur.next_ts(symbol)
            if start + self.tf.ms <= now:  # else nothing can have closed yet
                found += await self._klines(http, symbol, start, now, now)
        return cur.take(found)

    async def _klines(self, http: httpx.AsyncClient, symbol: str, start: int, end: int,
                      now: int) -> list[Kline]:
        """Closed klines of ``symbol`` opened in ``[start, end]``, page by page."""
        out: list[Kline] = []
        while start <= end:
            resp = await http.get(KLINES_PATH, params={
                "symbol": exchange_symbol(symbol), "interval": self.tf.value,
                "startTime": start, "endTime": end, "limit": self.page_limit,
            })
            resp.raise_for_status()
            rows = resp.json()  # JSONDecodeError on garbage: transient, the run reconnects
            if not isinstance(rows, list):
                raise BadFrame(f"klines response is not a list: {str(rows)[:PREVIEW_CHARS]}")
            newest: int | None = None
            for row in rows:
                try:
                    k = parse_row(row, symbol, self.tf, now)
                except BadFrame as err:
                    self._bad("rest", err, row)
                    continue
                newest = k.ts if newest is None else max(newest, k.ts)
                if k.closed:
                    out.append(k)
            if newest is None or len(rows) < self.page_limit:
                break
            start = newest + self.tf.ms
        return out

    def _bad(self, channel: str, err: BadFrame, raw: object) -> None:
        BAD_FRAMES.labels(channel).inc()
        log.warning("live frame skipped", source=self.name, channel=channel, error=str(err),
                    frame=str(raw)[:PREVIEW_CHARS])
