import json
from pathlib import Path

import numpy as np
import pytest

from decile.training.calibration import (
    Isotonic,
    Platt,
    calibration_from_dict,
    fit_calibration,
    logit,
)
from decile.training.report import ece


def _miscalibrated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """True p = sigmoid(m); the model reports sigmoid(3m + 1): overconfident and biased."""
    rng = np.random.default_rng(seed)
    m = rng.normal(0, 1, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-m))).astype(np.float64)
    return 3 * m + 1, y


def test_isotonic_is_monotone_and_beats_the_raw_probabilities_on_fresh_rows() -> None:
    margin, y = _miscalibrated(20_000, seed=1)
    iso = Isotonic.fit(margin, y)
    grid = np.linspace(-12, 12, 2_001)
    assert (np.diff(iso(grid)) >= 0).all()
    assert ((iso(grid) >= 1e-6) & (iso(grid) <= 1 - 1e-6)).all()
    margin2, y2 = _miscalibrated(20_000, seed=2)  # fresh rows: no in-sample flattery
    raw = 1 / (1 + np.exp(-margin2))
    assert ece(y2, iso(margin2)) < 0.02 < 0.1 < ece(y2, raw)


def test_isotonic_pools_adjacent_violators_exactly() -> None:
    iso = Isotonic.fit(np.array([0.0, 1.0, 2.0, 3.0]), np.array([0.0, 1.0, 0.0, 1.0]))
    np.testing.assert_allclose(iso([0.0, 1.0, 2.0, 3.0]), [1e-6, 0.5, 0.5, 1 - 1e-6])
    assert iso.x == (0.0, 1.0, 2.0, 3.0)
    tied = Isotonic.fit(np.array([1.0, 1.0, 2.0]), np.array([0.0, 1.0, 1.0]))  # equal margins
    assert tied.x == (1.0, 2.0)
    assert tied.y == (0.5, 1.0)


def test_isotonic_keeps_only_the_ends_of_flat_runs() -> None:
    margin = np.arange(100, dtype=np.float64)
    iso = Isotonic.fit(margin, (margin >= 50).astype(np.float64))
    assert iso.x == (0.0, 49.0, 50.0, 99.0)
    np.testing.assert_array_equal(iso(margin), np.clip(margin >= 50, 1e-6, 1 - 1e-6))


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_calibrations_round_trip_through_json_exactly(method: str) -> None:
    margin, y = _miscalibrated(5_000, seed=3)
    cal = fit_calibration(method, margin, y)  # type: ignore[arg-type]
    d = json.loads(json.dumps({"on": "logit(onnx probability)", **cal.to_dict()}))
    back = calibration_from_dict(d)
    assert back == cal
    assert d["method"] == method
    np.testing.assert_array_equal(back(margin), cal(margin))


def test_from_dict_refuses_an_unknown_method_or_input() -> None:
    with pytest.raises(ValueError, match="unknown calibration"):
        calibration_from_dict({"method": "beta"})
    with pytest.raises(ValueError, match="applies to"):
        calibration_from_dict({"method": "platt", "a": 1, "b": 0, "on": "onnx probability"})
    with pytest.raises(ValueError, match="non-decreasing"):
        Isotonic((0.0, 1.0), (0.9, 0.1))


def test_platt_still_imports_from_models_and_logit_inverts_the_sigmoid() -> None:
    from decile.training.models import Platt as PlattFromModels

    assert PlattFromModels is Platt
    np.testing.assert_allclose(Platt(1.0, 0.0)(logit([0.2, 0.7])), [0.2, 0.7])


def test_an_isotonic_entry_model_reproduces_its_golden_outputs_from_metrics_json(
    tmp_path: Path,
) -> None:
    pytest.importorskip("lightgbm")
    from training_support import synthetic_dataset

    from decile.training.export import predict_onnx, train_family
    from decile.training.models import TrainConfig

    ds = synthetic_dataset(n_rows=6_000, planted=2.0, seed=5)
    cfg = TrainConfig(num_boost_round=40, early_stopping_rounds=10, calibration="isotonic")
    doc = train_family(ds, tmp_path, "entry", config=cfg, report=False, tuning={"trials": 0})
    assert doc["calibration"]["method"] == "isotonic"
    assert doc["calibration"]["on"] == "logit(onnx probability)"
    assert doc["tuning"] == {"trials": 0}
    assert doc["report_files"] == []
    assert not (tmp_path / "report.md").exists()
    # what serving does: ONNX raw probability -> logit -> calibration from metrics.json
    cal = calibration_from_dict(json.loads((tmp_path / "metrics.json").read_text())["calibration"])
    x = np.array(doc["golden"]["input"], dtype=np.float64)
    raw = predict_onnx((tmp_path / "model.onnx").read_bytes(), x, binary=True)
    np.testing.assert_allclose(cal(logit(raw)), doc["golden"]["output"], atol=1e-5)


def test_train_config_refuses_an_unknown_calibration() -> None:
    pytest.importorskip("lightgbm")
    from decile.training.models import TrainConfig

    with pytest.raises(ValueError, match="calibration"):
        TrainConfig(calibration="beta")  # type: ignore[arg-type]


def test_platt_converges_on_margins_three_times_too_confident() -> None:
    # undamped Newton from (1, 0) diverged to a ~ 1e10 here; the step-halving guard fixes it
    margin, y = _miscalibrated(20_000, seed=4)
    cal = Platt.fit(margin, y)
    assert cal.a == pytest.approx(1 / 3, abs=0.03)
    assert cal.b == pytest.approx(-1 / 3, abs=0.05)
