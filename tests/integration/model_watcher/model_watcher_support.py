"""Helpers for the model-watcher tests (a plain module): read the MODEL stream, poll metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nats
from nats.js import JetStreamContext

from decile import codec
from decile.events import ModelActivated, ModelRejected
from decile.subjects import Subjects
from decile.testing.probes import (
    eventually,
    free_port,
    http_get,
    metric_value,
    output,
    service_process,
    stream_messages,
    wait_ready,
)


def truncate(path: Path) -> None:
    """Keep the first half of the file: the stored bytes no longer match the registry."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def swap_for_directory(path: Path) -> None:
    """Put a directory where the file was (reads fail with an OSError, not NotFound)."""
    path.rename(path.with_name(path.name + ".kept"))
    path.mkdir()


def swap_back(path: Path) -> None:
    path.rmdir()
    path.with_name(path.name + ".kept").rename(path)


@asynccontextmanager
async def jetstream(url: str) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(url)
    try:
        yield nc.jetstream()
    finally:
        await nc.close()


async def announced(
    js: JetStreamContext, subjects: Subjects, kind: str = "activated", family: str = "entry"
) -> list[Any]:
    """Decoded events stored on ``model.<kind>.<family>`` in the test's MODEL stream."""
    subject = (subjects.model_activated if kind == "activated" else subjects.model_rejected)(
        family
    )
    try:
        msgs = await stream_messages(js, subjects.stream("MODEL"), subject)
    except nats.js.errors.NotFoundError:  # the service has not provisioned the streams yet
        return []
    expect = ModelActivated if kind == "activated" else ModelRejected
    return [codec.decode(m.data, dict(m.headers or {}), expect=expect) for m in msgs]


async def wait_for(
    js: JetStreamContext, subjects: Subjects, count: int, kind: str = "activated",
    family: str = "entry", within: float = 30.0,
) -> list[Any]:
    """At least ``count`` events of ``kind`` (all of them returned, oldest first)."""

    async def enough() -> list[Any]:
        found = await announced(js, subjects, kind, family)
        return found if len(found) >= count else []

    found = await eventually(enough, within=within)
    assert found, f"fewer than {count} model.{kind}.{family} within {within}s"
    return list(found)


class Watcher:
    """A running service process and its HTTP port."""

    def __init__(self, proc: Any, port: int) -> None:
        self.proc, self.port = proc, port

    def metric(self, name: str, **labels: str) -> float:
        status, text = http_get(self.port, "/metrics")
        assert status == 200
        return metric_value(text, name, **labels)

    async def metric_reaches(self, name: str, value: float, **labels: str) -> bool:
        """Eventually at least ``value``."""

        async def reached() -> bool:
            return self.metric(name, **labels) >= value

        return bool(await eventually(reached, within=30))

    async def metric_equals(self, name: str, value: float, **labels: str) -> bool:
        async def equal() -> bool:
            return self.metric(name, **labels) == value

        return bool(await eventually(equal, within=30))

    def log(self) -> str:
        return output(self.proc)


@asynccontextmanager
async def watcher(env: dict[str, str]) -> AsyncIterator[Watcher]:
    """The service as a real process, ready (its first resync done) when entered."""
    port = free_port()
    with service_process("decile_model_watcher", env, port) as proc:
        await asyncio.to_thread(wait_ready, port, proc, 60)
        yield Watcher(proc, port)
