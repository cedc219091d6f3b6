"""Small helpers tests use to look at real servers: no mocks, just reads."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import numpy as np
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg

# ../shared/data beside the repository (the real datasets); DECILE_SHARED_DATA overrides.
# Tests that need it skip cleanly when it is absent; the bundled sample always runs.
SHARED_DATA = Path(
    os.environ.get("DECILE_SHARED_DATA")
    or Path(__file__).resolve().parents[5].parent / "shared" / "data"
)


@asynccontextmanager
async def provisioned_bus(url: str, namespace: str, service: str = "test") -> AsyncIterator[Any]:
    """A :class:`decile.bus.Bus` of its own on ``namespace``, streams provisioned: a test
    or a benchmark playing the services upstream and downstream of the ones it runs."""
    from faststream.nats import NatsBroker

    from decile.bus import Bus, provision_streams
    from decile.config import NatsSettings
    from decile.subjects import Subjects

    broker = NatsBroker(url)
    await broker.connect()
    bus = Bus(broker, Subjects(namespace), service)
    await provision_streams(bus.js, bus.subjects, NatsSettings(url=url, namespace=namespace))
    try:
        yield bus
    finally:
        await broker.stop()


def last_closed_bar(now: datetime, bar: timedelta = timedelta(minutes=5)) -> datetime:
    """Open time of the newest ``bar`` (minutes) bar closed at ``now``."""
    minutes = int(bar.total_seconds() // 60)
    floor = now.replace(second=0, microsecond=0, minute=now.minute - now.minute % minutes)
    return floor - bar


async def stream_messages(
    js: JetStreamContext, stream: str, subject: str | None = None
) -> list[RawStreamMsg]:
    """Every message currently stored in ``stream`` (optionally one subject filter)."""
    info = await js.stream_info(stream)
    out: list[RawStreamMsg] = []
    if not info.state.messages:
        return out
    for seq in range(max(1, info.state.first_seq), info.state.last_seq + 1):
        try:
            msg = await js.get_msg(stream, seq)
        except nats.js.errors.NotFoundError:
            continue
        if subject is None or (msg.subject is not None and subject_matches(subject, msg.subject)):
            out.append(msg)
    return out


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS wildcard matching (``*`` one token, ``>`` the rest)."""
    p, s = pattern.split("."), subject.split(".")
    for i, tok in enumerate(p):
        if tok == ">":
            return len(s) > i
        if i >= len(s) or (tok != "*" and tok != s[i]):
            return False
    return len(p) == len(s)


async def eventually(
    check: Callable[[], Awaitable[Any]], within: float = 20.0, interval: float = 0.1
) -> Any:
    """Poll ``check`` until it returns a truthy value; the last value on time-out."""
    deadline = time.monotonic() + within
    value = await check()
    while not value and time.monotonic() < deadline:
        await asyncio.sleep(interval)
        value = await check()
    return value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


async def metrics_when(port: int, name: str, want: float, within: float = 10.0,
                       **labels: str) -> str:
    """The service's /metrics text once ``name`` (with ``labels``) reads ``want``.

    A service counts an event after publishing it, so a test that has just seen the event
    polls rather than reads once; the returned text is one scrape for further checks.
    """
    async def scrape() -> str | None:
        text = (await asyncio.to_thread(http_get, port, "/metrics"))[1]
        return text if metric_value(text, name, **labels) == want else None

    text: str | None = await eventually(scrape, within=within)
    if text is None:
        raise AssertionError(f"{name}{labels or ''} never read {want}")
    return text


@contextmanager
def service_process(
    module: str, env: dict[str, str], port: int
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``python -m module`` as a real process; killed (and reaped) at exit.

    Output goes to a temporary file, never a pipe nobody reads (a full pipe
    would block the service); :func:`output` reads it.
    """
    full = {**os.environ, **env, "DECILE_OBS__HTTP_PORT": str(port),
            "DECILE_OBS__LOG_FORMAT": "json"}
    log = tempfile.NamedTemporaryFile(prefix=f"{module}-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", module], env=full, stdout=log,
                            stderr=subprocess.STDOUT)
    _LOGS[proc.pid] = log.name
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


_LOGS: dict[int, str] = {}


def output(proc: subprocess.Popen[bytes]) -> str:
    """What a :func:`service_process` printed so far."""
    path = _LOGS.get(proc.pid)
    return Path(path).read_text(errors="replace") if path else ""


def wait_ready(
    port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 30.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = output(proc)
            raise RuntimeError(f"service exited with {proc.returncode}:\n{out[-3000:]}")
        try:
            if http_get(port, "/readyz", timeout=0.5)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"service on port {port} not ready after {timeout}s")


def alive(pid: int) -> bool:
    """A process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rfind(")") + 2] != "Z"


def checksum_bars(symbols: Sequence[str], ts: np.ndarray, values: np.ndarray) -> str:
    """Order-independent sha256 over (symbol, ts, OHLCV): two stores hold the same bars."""
    names = np.asarray(symbols)
    order = np.lexsort((ts, names))
    h = hashlib.sha256()
    h.update("\n".join(names[order].tolist()).encode())
    h.update(np.ascontiguousarray(ts[order]).tobytes())
    h.update(np.ascontiguousarray(values[order]).tobytes())
    return h.hexdigest()


async def stored_bars(dsn: str, tf: str = "5m") -> tuple[int, str]:
    """Row count and :func:`checksum_bars` of table ``bars`` for one timeframe."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT symbol, (extract(epoch FROM ts) * 1000)::int8 AS ms, open, high, low, close, "
            "volume FROM bars WHERE tf = $1", tf)
    finally:
        await conn.close()
    ts = np.array([r["ms"] for r in rows], dtype=np.int64)
    values = np.array([tuple(r)[2:] for r in rows], dtype=np.float64).reshape(len(rows), 5)
    return len(rows), checksum_bars([r["symbol"] for r in rows], ts, values)


async def wait_stored(dsn: str, want: tuple[int, str], within: float = 120.0) -> tuple[int, str]:
    """Wait until ``want[0]`` bars are stored, let stragglers land, return what is stored."""

    async def enough() -> bool:
        return (await stored_bars(dsn))[0] >= want[0]

    await eventually(enough, within=within)
    await asyncio.sleep(1.0)  # anything extra (a double write) would show up now
    return await stored_bars(dsn)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            raw = stat.read_text()
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(stat.parent.name))
    return found
