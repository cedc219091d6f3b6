import numpy as np
import pytest

pytest.importorskip("lightgbm")

from training_support import BAR_MS, synthetic_dataset

from decile.training.dataset import Dataset
from decile.training.models import FeatureHealthError, LeakageError, TrainConfig, fit_family
from decile.training.report import auc
from decile.training.split import chronological_split

SMALL = TrainConfig(num_boost_round=80, early_stopping_rounds=15)


def _split(ds: Dataset):  # type: ignore[no-untyped-def]
    return chronological_split(ds.ts, horizon=ds.label_config.horizon, bar_ms=BAR_MS)


def _with_column(ds: Dataset, name: str, col: np.ndarray) -> Dataset:
    return Dataset(
        np.asfortranarray(np.column_stack([ds.x, col])),
        (*ds.feature_names, name),
        ds.schema_version,
        ds.tf,
        ds.symbols,
        ds.code,
        ds.ts,
        ds.strategy,
        ds.strategy_ids,
        ds.side,
        ds.win,
        ds.realised_r,
        ds.mae_atr,
        ds.best_offset,
        ds.label_config,
        ds.counts,
    )


def test_shuffled_labels_give_chance_auc_on_the_test_block() -> None:
    ds = synthetic_dataset(n_rows=40_000, planted=2.0, seed=3)
    shuffled = np.random.default_rng(11).permutation(ds.win)
    ds = Dataset(**{**ds.__dict__, "win": shuffled})
    sp = _split(ds)
    model = fit_family(ds, sp, "entry", SMALL)
    a = auc(ds.win[sp.test], model.predict(ds.x[sp.test]))
    assert abs(a - 0.5) <= 0.03


def test_a_planted_pattern_is_learned() -> None:
    ds = synthetic_dataset(n_rows=30_000, planted=2.0, seed=4)
    sp = _split(ds)
    model = fit_family(ds, sp, "entry", SMALL)
    assert auc(ds.win[sp.test], model.predict(ds.x[sp.test])) >= 0.8


def test_a_feature_copying_the_future_label_makes_training_refuse(demo_dataset: Dataset) -> None:
    noise = np.random.default_rng(0).normal(0, 0.3, len(demo_dataset))
    leaky = _with_column(demo_dataset, "peek_win", demo_dataset.win + noise)
    with pytest.raises(LeakageError, match=r"LEAKAGE_SUSPECTED.*peek_win") as err:
        fit_family(leaky, _split(leaky), "entry", SMALL)
    assert [n for n, _ in err.value.offenders] == ["peek_win"]


def test_the_leakage_guard_also_protects_the_quantile_families(demo_dataset: Dataset) -> None:
    leaky = _with_column(demo_dataset, "peek_mae", demo_dataset.mae_atr * 1.01)
    with pytest.raises(LeakageError, match="peek_mae"):
        fit_family(leaky, _split(leaky), "risk", SMALL)


def test_same_data_gives_an_identical_model_and_predictions(demo_dataset: Dataset) -> None:
    sp = _split(demo_dataset)
    a = fit_family(demo_dataset, sp, "entry", SMALL)
    b = fit_family(demo_dataset, sp, "entry", SMALL)
    assert a.booster.model_to_string() == b.booster.model_to_string()
    assert a.calibration == b.calibration
    x = demo_dataset.x[sp.test]
    np.testing.assert_array_equal(a.predict(x), b.predict(x))


def test_calibrated_p_win_matches_the_validation_win_rate_on_average(
    demo_dataset: Dataset,
) -> None:
    sp = _split(demo_dataset)
    m = fit_family(demo_dataset, sp, "entry", SMALL)
    p = m.predict(demo_dataset.x[sp.validation])
    assert abs(p.mean() - demo_dataset.win[sp.validation].mean()) < 0.01
    assert ((p > 0) & (p < 1)).all()


def test_the_risk_quantile_covers_about_seventy_percent_of_validation(
    demo_dataset: Dataset,
) -> None:
    sp = _split(demo_dataset)
    m = fit_family(demo_dataset, sp, "risk", SMALL)
    cover = (demo_dataset.mae_atr[sp.validation] <= m.predict(demo_dataset.x[sp.validation])).mean()
    assert 0.6 < cover < 0.8


def test_a_constant_feature_makes_training_refuse_with_the_health_reason(
    demo_dataset: Dataset,
) -> None:
    broken = _with_column(demo_dataset, "stuck", np.ones(len(demo_dataset)))
    with pytest.raises(FeatureHealthError, match="FEATURE_CONSTANT"):
        fit_family(broken, _split(broken), "entry", SMALL)
