from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("lightgbm")
pytest.importorskip("optuna")

from training_support import BAR_MS, synthetic_dataset

from decile.training.dataset import Dataset
from decile.training.models import TrainConfig
from decile.training.split import Split, chronological_split
from decile.training.tuning import SEARCH_SPACE, tune

BASE = TrainConfig(num_boost_round=30, early_stopping_rounds=10, seed=11)


@pytest.fixture(scope="module")
def data() -> tuple[Dataset, Split]:
    ds = synthetic_dataset(n_rows=6_000, planted=2.0, seed=8)
    return ds, chronological_split(ds.ts, horizon=ds.label_config.horizon, bar_ms=BAR_MS)


@pytest.fixture(scope="module")
def tuned(data: tuple[Dataset, Split]) -> tuple[TrainConfig, dict]:  # type: ignore[type-arg]
    return tune(*data, "entry", trials=4, base=BASE)


def test_tuning_returns_a_config_inside_the_search_space(
    tuned: tuple[TrainConfig, dict],  # type: ignore[type-arg]
) -> None:
    cfg, summary = tuned
    assert summary["trials"] == 4
    assert summary["objective"].startswith("validation log_loss")
    assert set(summary["best_params"]) == set(SEARCH_SPACE)
    for name, (lo, hi, _) in SEARCH_SPACE.items():
        assert lo <= getattr(cfg, name) <= hi
        assert getattr(cfg, name) == summary["best_params"][name]
    assert cfg.num_boost_round == BASE.num_boost_round  # untuned fields kept from base
    assert cfg.seed == BASE.seed
    assert 0 < summary["best_value"] < 0.7


def test_tuning_is_deterministic_for_a_seed(
    data: tuple[Dataset, Split],
    tuned: tuple[TrainConfig, dict],  # type: ignore[type-arg]
) -> None:
    assert tune(*data, "entry", trials=4, base=BASE) == tuned


def test_tuning_never_reads_the_test_block(
    data: tuple[Dataset, Split],
    tuned: tuple[TrainConfig, dict],  # type: ignore[type-arg]
) -> None:
    ds, sp = data
    win, r, x = ds.win.copy(), ds.realised_r.copy(), ds.x.copy()
    win[sp.test] = 99  # absurd labels
    r[sp.test] = np.nan
    x[sp.test] = np.nan
    poisoned = Dataset(**{**ds.__dict__, "win": win, "realised_r": r, "x": x})
    assert tune(poisoned, sp, "entry", trials=4, base=BASE) == tuned
    out_of_range = replace(sp, test=np.array([10**9], dtype=np.int64))
    assert tune(ds, out_of_range, "entry", trials=4, base=BASE) == tuned  # no IndexError


def test_quantile_families_tune_on_validation_pinball(data: tuple[Dataset, Split]) -> None:
    cfg, summary = tune(*data, "risk", trials=2, base=BASE)
    assert summary["trials"] == 2
    assert "pinball" in summary["objective"]
    assert summary["best_value"] > 0
    assert SEARCH_SPACE["num_leaves"][0] <= cfg.num_leaves <= SEARCH_SPACE["num_leaves"][1]
