"""Session fixtures: the planted market, its dataset, split and fitted confirm model."""

from __future__ import annotations

import pytest
from confirm_support import Planted, planted_market

from decile.confirm import ConfirmConfig, build_confirm_dataset, confirm_split, fit_confirm


@pytest.fixture(scope="session")
def planted() -> Planted:
    config = ConfirmConfig()
    cands, outcomes, bars, u = planted_market(config=config)
    ds = build_confirm_dataset(cands, outcomes, bars, config)
    split = confirm_split(ds)
    return Planted(config, cands, outcomes, bars, u, ds, split, fit_confirm(ds, split))
