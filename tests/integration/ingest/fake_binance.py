"""A loopback Binance for live-ingest tests: kline websocket and REST klines on one port.

The test drives it bar by bar, so each scenario is deterministic without sleeps:
:meth:`FakeBinance.close_bar` moves the fake's clock to a bar's close, makes the
bar visible over REST and streams it the way Binance does (an open update, the
closed candle, the next bar's first open update). Faults are explicit calls:
repeated and late frames, raw (malformed) frames, a dropped socket, an outage
that refuses reconnects, failing REST calls. Give :meth:`clock` to the client,
so "closed" means the same on both sides.

REST also serves the forming candle (as Binance does) with values that differ
from the final ones, so a client leaking an open candle shows up as a wrong bar.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from decile.market.bars import Bars
from decile.market.timeframes import parse

HOST = "127.0.0.1"
DEFAULT_LIMIT, MAX_LIMIT = 500, 1000
WAIT_S = 10.0


def exchange_name(symbol: str) -> str:
    """Written here again, not imported: the fake must not share the client's mistakes."""
    return symbol.replace("/", "")


class FakeBinance:
    """Serves ``bars`` (any symbols, aligned ``tf`` open times) as Binance klines."""

    def __init__(self, bars: Bars, tf: str = "5m") -> None:
        self.tf = parse(tf)
        self.times: tuple[int, ...] = tuple(sorted(set(bars.ts.tolist())))
        self.symbols = bars.present()
        self._rows: dict[tuple[str, int], tuple[float, ...]] = {
            (str(s), int(t)): tuple(float(x) for x in row)
            for s, t, row in zip(bars.symbol, bars.ts, bars.ohlcv(), strict=True)
        }
        self.now: int = self.times[0] + self.tf.ms // 2  # bar 0 is forming
        self.up = True
        self.fail_rest = 0  # the next N REST calls answer 503
        self.connections = 0
        self.subscriptions: list[list[str]] = []
        self.rest_queries: list[tuple[int, dict[str, str]]] = []  # (connections so far, query)
        self.refused = asyncio.Event()  # set once a request met the outage
        self._ws: ServerConnection | None = None
        self._server: Server | None = None
        self._changed = asyncio.Condition()

    # -- lifecycle --------------------------------------------------------
    async def __aenter__(self) -> FakeBinance:
        self._server = await serve(self._handler, HOST, 0, process_request=self._http)
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        assert self._server is not None
        self._server.close()
        await asyncio.wait_for(self._server.wait_closed(), WAIT_S)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def clock(self) -> int:
        return self.now

    # -- what the test asserts against ------------------------------------
    def bars_until(self, i: int) -> Bars:
        """Final values of bars ``0..i`` of every symbol, in ``(ts, symbol)`` order."""
        keys = [(s, t) for t in self.times[: i + 1] for s in self.symbols if (s, t) in self._rows]
        cols = list(zip(*(self._rows[k] for k in keys), strict=True))
        return Bars.from_arrays([s for s, _ in keys], [t for _, t in keys], *cols)

    # -- driving the script -----------------------------------------------
    async def wait_connections(self, n: int) -> None:
        """Until the ``n``-th websocket client has subscribed (bounded: fails, never hangs)."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: self.connections >= n), WAIT_S)

    async def close_bar(self, i: int, *, stream: bool = True, repeat: int = 1) -> None:
        """Bar ``i`` closes: the clock reaches its close; streamed unless ``stream=False``."""
        ts = self.times[i]
        self.now = max(self.now, ts + self.tf.ms)
        if not stream:
            return
        for s in self.symbols:
            await self.send(self._frame(s, ts, final=False))
        for _ in range(repeat):
            await self.send_closed(i)
        if i + 1 < len(self.times):
            for s in self.symbols:
                await self.send(self._frame(s, self.times[i + 1], final=False))

    async def send_closed(self, i: int) -> None:
        """The closed-candle frames of bar ``i`` again (late or repeated)."""
        for s in self.symbols:
            await self.send(self._frame(s, self.times[i], final=True))

    async def send(self, frame: str | bytes) -> None:
        """Any frame (bytes as a binary frame) to the client; lost, as on a real socket, if none."""
        if self._ws is None:
            return
        with contextlib.suppress(ConnectionClosed):
            await self._ws.send(frame)

    async def go_down(self) -> None:
        """Cut the socket without a close frame and refuse every request until :meth:`come_up`."""
        self.up = False
        ws, self._ws = self._ws, None
        if ws is not None:
            ws.transport.abort()
            await asyncio.wait_for(ws.wait_closed(), WAIT_S)

    def come_up(self) -> None:
        self.up = True

    # -- the exchange -----------------------------------------------------
    def _frame(self, symbol: str, ts: int, *, final: bool) -> str:
        o, h, lo, c, v = self._values(symbol, ts, final=final)
        ex = exchange_name(symbol)
        k = {"t": ts, "T": ts + self.tf.ms - 1, "s": ex, "i": self.tf.value, "f": 1, "L": 2,
             "o": repr(o), "c": repr(c), "h": repr(h), "l": repr(lo), "v": repr(v), "n": 2,
             "x": final, "q": "0", "V": "0", "Q": "0", "B": "0"}
        data = {"e": "kline", "E": self.now, "s": ex, "k": k}
        return json.dumps({"stream": f"{ex.lower()}@kline_{self.tf.value}", "data": data})

    def _values(self, symbol: str, ts: int, *, final: bool) -> tuple[float, ...]:
        """Final values, or a plausible forming candle: same open, closed at the open so far."""
        o, h, lo, c, v = self._rows[(symbol, ts)]
        return (o, h, lo, c, v) if final else (o, o, o, o, v / 3)

    def _klines(self, q: dict[str, str]) -> list[list[Any]]:
        by_name = {exchange_name(s): s for s in self.symbols}
        symbol = by_name[q["symbol"]]
        start, end = int(q.get("startTime", 0)), int(q.get("endTime", 2**62))
        limit = min(int(q.get("limit", DEFAULT_LIMIT)), MAX_LIMIT)
        rows = []
        for ts in self.times:
            if ts > self.now or not start <= ts <= end or (symbol, ts) not in self._rows:
                continue
            values = self._values(symbol, ts, final=ts + self.tf.ms <= self.now)
            rows.append([ts, *map(repr, values), ts + self.tf.ms - 1, "0", 2, "0", "0", "0"])
        return rows[:limit]

    def _http(self, conn: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        if not self.up:
            self.refused.set()
            return conn.respond(503, "down for the test\n")
        if url.path == "/stream":
            return None  # websocket handshake
        if url.path != "/api/v3/klines":
            return conn.respond(404, "not found\n")
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self.rest_queries.append((self.connections, q))
        if self.fail_rest > 0:
            self.fail_rest -= 1
            return conn.respond(503, "try later\n")
        if q.get("interval") != self.tf.value or q.get("symbol") not in {
            exchange_name(s) for s in self.symbols
        }:
            return self._json(conn, 400, {"code": -1121, "msg": "Invalid symbol."})
        return self._json(conn, 200, self._klines(q))

    @staticmethod
    def _json(conn: ServerConnection, status: int, body: object) -> Response:
        resp = conn.respond(status, json.dumps(body))
        del resp.headers["Content-Type"]
        resp.headers["Content-Type"] = "application/json"
        return resp

    async def _handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        query = parse_qs(urlsplit(ws.request.path).query)
        streams: Sequence[str] = query.get("streams", [""])[0].split("/")
        async with self._changed:
            self._ws = ws
            self.connections += 1
            self.subscriptions.append(list(streams))
            self._changed.notify_all()
        try:
            await ws.wait_closed()
        finally:
            if self._ws is ws:
                self._ws = None
