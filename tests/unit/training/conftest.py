"""Shared fixture: the bundled-sample dataset (built once per session)."""

from __future__ import annotations

import pytest

from decile.market.loaders import load_demo
from decile.training.dataset import Dataset, build_dataset


@pytest.fixture(scope="session")
def demo_dataset() -> Dataset:
    return build_dataset(load_demo())
