"""Shared data for the feature tests: the bundled sample always, the 110-pair set when present."""

from __future__ import annotations

import pytest
from features_support import online_rows

from decile.features import OfflineFeatures, compute_offline
from decile.market.bars import Bars
from decile.market.loaders import load_demo


@pytest.fixture(scope="session")
def demo() -> Bars:
    return load_demo()


@pytest.fixture(scope="session")
def demo_offline(demo: Bars) -> OfflineFeatures:
    return compute_offline(demo).sorted()


@pytest.fixture(scope="session")
def demo_online(demo: Bars) -> OfflineFeatures:
    return online_rows(demo)
