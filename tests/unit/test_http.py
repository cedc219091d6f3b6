"""HealthServer: /metrics, /healthz and /readyz over a real socket on a free port."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from decile.http import HealthServer
from decile.metrics import READY

Response = tuple[int, dict[str, str], bytes]


async def _get(port: int, path: str, method: str = "GET") -> Response:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)  # server closes after one answer
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    assert int(headers["content-length"]) == len(body)
    return int(status_line.split(" ")[1]), headers, body


class Readiness:
    """A readiness check the test flips."""

    def __init__(self) -> None:
        self.checks = {"nats": True, "streams": True}

    def __call__(self) -> dict[str, bool]:
        return dict(self.checks)


@pytest.fixture
def readiness() -> Readiness:
    return Readiness()


@pytest.fixture
async def server(readiness: Readiness) -> AsyncIterator[HealthServer]:
    srv = HealthServer("127.0.0.1", 0, readiness)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


async def test_port_zero_picks_a_free_port(server: HealthServer) -> None:
    assert 0 < server.port < 65536


async def test_metrics_serves_prometheus_text(server: HealthServer) -> None:
    READY.labels("http-test").set(1)
    status, headers, body = await _get(server.port, "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    text = body.decode()
    assert "# HELP decile_ready " in text
    assert "# TYPE decile_ready gauge" in text
    assert 'decile_ready{service="http-test"} 1.0' in text
    assert "# TYPE decile_messages_in_total counter" in text


async def test_healthz_is_200_while_the_loop_runs(server: HealthServer) -> None:
    status, headers, body = await _get(server.port, "/healthz")
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"status": "ok"}


async def test_readyz_is_200_when_every_check_passes(server: HealthServer) -> None:
    status, _, body = await _get(server.port, "/readyz")
    assert status == 200
    assert json.loads(body) == {"ready": True, "checks": {"nats": True, "streams": True}}


async def test_readyz_is_503_naming_the_failing_check(
    server: HealthServer, readiness: Readiness
) -> None:
    readiness.checks["streams"] = False
    status, _, body = await _get(server.port, "/readyz")
    assert status == 503
    assert json.loads(body) == {"ready": False, "checks": {"nats": True, "streams": False}}


async def test_readyz_follows_the_check_as_it_changes(
    server: HealthServer, readiness: Readiness
) -> None:
    readiness.checks["nats"] = False
    assert (await _get(server.port, "/readyz"))[0] == 503
    readiness.checks["nats"] = True
    assert (await _get(server.port, "/readyz"))[0] == 200


async def test_readyz_is_503_when_the_check_itself_fails() -> None:
    def broken() -> dict[str, bool]:
        raise RuntimeError("state store unreachable")

    srv = HealthServer("127.0.0.1", 0, broken)
    await srv.start()
    try:
        status, _, body = await _get(srv.port, "/readyz")
    finally:
        await srv.stop()
    assert status == 503
    answer = json.loads(body)
    assert answer["ready"] is False
    assert "state store unreachable" in answer["error"]


async def test_query_strings_are_ignored(server: HealthServer) -> None:
    assert (await _get(server.port, "/healthz?verbose=1"))[0] == 200


@pytest.mark.parametrize("path", ["/", "/health", "/metrics/extra", "/readyz/", "/HEALTHZ"])
async def test_other_paths_are_404(server: HealthServer, path: str) -> None:
    status, headers, body = await _get(server.port, path)
    assert status == 404
    assert headers["content-type"] == "text/plain"
    assert body == b"not found"


async def test_a_stopped_server_refuses_connections(readiness: Readiness) -> None:
    srv = HealthServer("127.0.0.1", 0, readiness)
    await srv.start()
    port = srv.port
    await srv.stop()
    with pytest.raises(ConnectionRefusedError):
        await _get(port, "/healthz")


async def test_stop_twice_is_harmless(readiness: Readiness) -> None:
    srv = HealthServer("127.0.0.1", 0, readiness)
    await srv.start()
    await srv.stop()
    await srv.stop()
