"""A registry on this test's own fresh database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from decile.registry import Registry


@pytest.fixture
async def registry(pg_dsn: str) -> AsyncIterator[Registry]:
    reg = await Registry.connect(pg_dsn)
    yield reg
    await reg.close()
