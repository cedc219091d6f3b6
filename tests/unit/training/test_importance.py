import numpy as np
import pytest

pytest.importorskip("lightgbm")

from training_support import BAR_MS, synthetic_dataset

from decile.training.importance import evenly_spaced, feature_importance
from decile.training.models import TrainConfig, fit_family
from decile.training.split import chronological_split

SMALL = TrainConfig(num_boost_round=60, early_stopping_rounds=15)


def test_the_planted_features_top_both_rankings() -> None:
    ds = synthetic_dataset(n_rows=12_000, planted=3.0, seed=6)
    sp = chronological_split(ds.ts, horizon=ds.label_config.horizon, bar_ms=BAR_MS)
    model = fit_family(ds, sp, "entry", SMALL)
    imp = feature_importance(model, ds.x[sp.test])
    for kind in ("gain", "shap"):
        ranking = imp[kind]
        assert set(ranking) == set(ds.feature_names)
        assert set(list(ranking)[:2]) == {"x0", "x1"}, (kind, ranking)
        values = list(ranking.values())
        assert values == sorted(values, reverse=True)
        assert sum(values) == pytest.approx(1.0)
    assert feature_importance(model, ds.x[:0])["shap"] == {}


def test_shap_rows_are_evenly_spaced_and_capped() -> None:
    np.testing.assert_array_equal(evenly_spaced(5, 10), np.arange(5))
    rows = evenly_spaced(10_001, 2_000)
    assert len(rows) == 2_000
    assert rows[0] == 0
    assert rows[-1] == 10_000
    assert (np.diff(rows) > 0).all()
