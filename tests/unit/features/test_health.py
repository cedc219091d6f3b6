import numpy as np
import pytest
from features_support import bar_index, real_bars

from decile.features import (
    SCHEMA,
    OfflineFeatures,
    check_health,
    compute_offline,
    feature_stats,
)
from decile.reasons import ReasonCode


def after_warm_up(feats: OfflineFeatures) -> np.ndarray:
    return feats.values[bar_index(feats) >= SCHEMA.max_warmup]


def codes(rejections: list) -> dict[str, set[ReasonCode]]:  # type: ignore[type-arg]
    out: dict[str, set[ReasonCode]] = {}
    for r in rejections:
        out.setdefault(str(r.values["feature"]), set()).add(r.code)
    return out


def test_no_feature_is_constant_or_null_on_the_bundled_real_sample_after_warm_up(
    demo_offline: OfflineFeatures,
) -> None:
    matrix = after_warm_up(demo_offline)
    assert len(matrix) > 100_000
    assert check_health(matrix, SCHEMA.names) == []


def test_no_feature_is_constant_or_null_on_110_real_pairs_after_warm_up() -> None:
    feats = compute_offline(real_bars(start="2021-01-01", end="2021-01-15"))
    assert check_health(after_warm_up(feats), SCHEMA.names) == []


def test_the_check_catches_a_constant_an_all_null_and_a_mostly_null_column(
    demo_offline: OfflineFeatures,
) -> None:
    matrix = after_warm_up(demo_offline).copy()
    const, null, sparse = SCHEMA.index("rsi_14"), SCHEMA.index("adx_14"), SCHEMA.index("cci_20")
    matrix[:, const] = 0.0  # the bug the old system shipped: a "feature" that is always 0
    matrix[:, null] = np.nan
    matrix[np.arange(len(matrix)) % 10 != 0, sparse] = np.nan  # 90% missing
    found = codes(check_health(matrix, SCHEMA.names, max_null_rate=0.05))
    assert found == {
        "rsi_14": {ReasonCode.FEATURE_CONSTANT},
        "adx_14": {ReasonCode.FEATURE_ALL_NULL},
        "cci_20": {ReasonCode.FEATURE_NULL_RATE},
    }


def test_a_rejection_names_the_feature_the_observed_value_and_the_limit() -> None:
    matrix = np.array([[1.0, np.nan], [1.0, 2.0], [1.0, 3.0], [1.0, np.nan], [1.0, np.nan]])
    rejections = check_health(matrix, ["flat", "sparse"], max_null_rate=0.5)
    assert [(r.gate, r.code) for r in rejections] == [
        ("feature_health", ReasonCode.FEATURE_CONSTANT),
        ("feature_health", ReasonCode.FEATURE_NULL_RATE),
    ]
    assert rejections[0].values == {"feature": "flat", "value": 1.0, "rows": 5}
    assert rejections[1].values == {"feature": "sparse", "null_rate": 0.6, "limit": 0.5}


def test_stats_ignore_nan_and_report_the_range_of_finite_values() -> None:
    matrix = np.array([[1.0, np.nan], [3.0, np.nan], [np.nan, np.nan]])
    a, b = feature_stats(matrix, ["a", "b"])
    assert (a.finite, a.min, a.max, round(a.null_rate, 3)) == (2, 1.0, 3.0, 0.333)
    assert b.finite == 0
    assert np.isnan(b.min)


def test_a_matrix_that_does_not_match_the_names_is_refused() -> None:
    with pytest.raises(ValueError, match="columns"):
        check_health(np.zeros((3, 2)), ["only_one"])
