"""Fixtures shared by the integration tests of single services."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from decile.bus import Bus, provision_streams
from decile.config import NatsSettings
from decile.subjects import Subjects


@pytest.fixture
async def bus(nats_url: str, nats_namespace: str) -> AsyncIterator[Bus]:
    """The test's own connection to the namespace, streams provisioned: it plays the
    services upstream and downstream of the one under test."""
    from faststream.nats import NatsBroker

    broker = NatsBroker(nats_url)
    await broker.connect()
    b = Bus(broker, Subjects(nats_namespace), "test")
    await provision_streams(b.js, b.subjects, NatsSettings(url=nats_url, namespace=nats_namespace))
    try:
        yield b
    finally:
        await broker.stop()
