"""Fixtures shared by the integration tests of single services."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from decile.bus import Bus
from decile.testing.probes import provisioned_bus


@pytest.fixture
async def bus(nats_url: str, nats_namespace: str) -> AsyncIterator[Bus]:
    """The test's own connection to the namespace, streams provisioned: it plays the
    services upstream and downstream of the one under test."""
    async with provisioned_bus(nats_url, nats_namespace) as b:
        yield b
