"""PSI against the training reference: quiet on the same distribution, loud on a shift."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from decile.reasons import ReasonCode
from decile.serving import LoadedModel, PsiMonitor
from decile.training.dataset import Dataset

LEVELS = [0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99]
NAMES = ("a", "b", "c", "d", "e")


def reference(x: np.ndarray, names: tuple[str, ...]) -> dict[str, Any]:
    """As export.py writes it: train quantiles over finite values, and the null rate."""
    feats = {}
    for j, n in enumerate(names):
        col = x[:, j]
        ok = col[np.isfinite(col)]
        feats[n] = {"quantiles": np.quantile(ok, LEVELS).tolist(),
                    "null_rate": 1 - len(ok) / len(col)}
    return {"levels": LEVELS, "features": feats}


@pytest.fixture(scope="module")
def ref() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    train = rng.standard_normal((50_000, len(NAMES))) * [1, 2, 0.5, 1, 3] + [0, 5, -1, 0, 10]
    return reference(train, NAMES)


def fresh(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out: np.ndarray = rng.standard_normal((n, len(NAMES))) * [1, 2, 0.5, 1, 3] + [0, 5, -1, 0, 10]
    return out


def test_the_same_distribution_stays_below_0_05(ref: dict[str, Any]) -> None:
    mon = PsiMonitor(ref, window=5000)
    for k in range(10):  # cycles of 500 rows
        mon.update(fresh(500, seed=10 + k))
    psi = mon.psi()
    assert set(psi) == set(NAMES)
    assert max(psi.values()) < 0.05, psi
    assert mon.check() is None


def test_a_one_std_shift_is_flagged_on_that_feature_only(ref: dict[str, Any]) -> None:
    mon = PsiMonitor(ref, window=5000)
    x = fresh(5000, seed=1)
    x[:, 2] += 0.5  # one std of feature c
    mon.update(x)
    psi = mon.psi()
    assert psi["c"] > 0.2
    assert all(v < 0.05 for k, v in psi.items() if k != "c"), psi
    assert list(mon.drifted()) == ["c"]
    rej = mon.check()
    assert rej is not None
    assert (rej.code, rej.gate) == (ReasonCode.FEATURE_DRIFT, "feature_drift")
    assert rej.values["feature"] == "c"
    assert rej.values["features_over"] == 1
    # the window rolls: 5000 rows of the old distribution wash the shift out
    mon.update(fresh(2500, seed=2))
    mon.update(fresh(2500, seed=3))
    assert mon.rows == 5000
    assert max(mon.psi().values()) < 0.05


def test_columns_by_name_and_a_feature_going_missing(ref: dict[str, Any]) -> None:
    order = ("e", "x_unknown", "a", "b", "c", "d")
    mon = PsiMonitor(ref, window=4000, names=order)
    assert mon.monitored == ("e", "a", "b", "c", "d")
    assert mon.skipped == {"x_unknown": "NO_REFERENCE"}
    base = fresh(4000, seed=4)
    x = np.column_stack([base[:, 4], np.zeros(4000), base[:, :4]])
    x[:800, 0] = np.nan  # 20% missing where training had none
    mon.update(x)
    psi = mon.psi()
    assert psi["e"] > 0.2
    assert max(v for k, v in psi.items() if k != "e") < 0.05
    with pytest.raises(ValueError, match="columns"):
        mon.update(base)


def test_point_masses_are_not_monitored_and_small_windows_say_nan(ref: dict[str, Any]) -> None:
    tied = {**ref, "features": {**ref["features"],
                                "side": {"quantiles": [-1.0] * 4 + [1.0] * 5, "null_rate": 0.0},
                                "gone": {"quantiles": [None] * 9, "null_rate": 1.0}}}
    mon = PsiMonitor(tied, window=5000, min_rows=1000)
    assert mon.skipped == {"side": "TIED_QUANTILES", "gone": "NO_QUANTILES"}
    mon.update(np.column_stack([fresh(999, 5), np.ones(999), np.full(999, np.nan)]))
    assert all(math.isnan(v) for v in mon.psi().values())
    assert mon.check() is None
    mon.update(np.column_stack([fresh(1, 6), np.ones(1), np.full(1, np.nan)]))
    assert max(mon.psi().values()) < 0.1
    mon.reset()
    assert mon.rows == 0
    with pytest.raises(ValueError, match="levels"):
        PsiMonitor({"levels": [0.5, 0.1], "features": {}})


def test_a_trained_models_reference_matches_its_own_training_rows(
    loaded: dict[str, LoadedModel], train_ds: Dataset
) -> None:
    mon = loaded["entry"].drift_monitor(window=5000)
    assert {"side", "strategy_code"} <= set(mon.skipped)
    assert len(mon.monitored) > 60
    n_train = int(len(train_ds) * 0.7) - 200  # inside the train block
    rows = np.random.default_rng(0).choice(n_train, 5000, replace=False)
    mon.update(train_ds.x[rows])
    psi = mon.psi()
    assert max(psi.values()) < 0.05, sorted(psi.items(), key=lambda kv: -kv[1])[:3]
