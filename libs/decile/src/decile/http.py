"""``/metrics``, ``/healthz`` and ``/readyz`` on a small asyncio HTTP server.

No web framework: three GET routes do not justify one in every image.
``/healthz`` answers while the event loop runs; ``/readyz`` is 200 only when the
service's readiness check passes (connected, streams provisioned, state rebuilt).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from decile.metrics import REGISTRY

ReadyCheck = Callable[[], dict[str, bool]]


class HealthServer:
    def __init__(self, host: str, port: int, ready: ReadyCheck) -> None:
        self._host, self._port, self._ready = host, port, ready
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self._host, self._port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            path = request.split(b" ", 2)[1].decode() if request.count(b" ") >= 2 else "/"
            status, ctype, body = self._route(path.split("?", 1)[0])
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
                ConnectionError):
            pass
        finally:
            writer.close()

    def _route(self, path: str) -> tuple[str, str, bytes]:
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, generate_latest(REGISTRY)
        if path == "/healthz":
            return "200 OK", "application/json", b'{"status":"ok"}'
        if path == "/readyz":
            try:
                checks = self._ready()
            except Exception as err:  # a check that cannot tell means not ready; answer anyway
                body = json.dumps({"ready": False, "checks": {}, "error": repr(err)}).encode()
                return "503 Service Unavailable", "application/json", body
            ok = all(checks.values())
            body = json.dumps({"ready": ok, "checks": checks}).encode()
            return ("200 OK" if ok else "503 Service Unavailable"), "application/json", body
        return "404 Not Found", "text/plain", b"not found"
