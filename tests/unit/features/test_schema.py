import numpy as np
import pytest
from features_support import synthetic

from decile.features import SCHEMA, SCHEMA_VERSION, SPECS, FeatureGroup, compute_offline
from decile.features.definitions import define, rsi
from decile.features.primitives import Prims
from decile.features.schema import FeatureSchema, derive_version
from decile.market.bars import Bars
from decile.market.loaders import load_demo
from decile.reasons import ReasonCode


def test_the_schema_version_is_pinned_so_any_change_to_the_feature_set_fails_here() -> None:
    # Changed a window, a period, the order or a warm-up? Then models trained on the old
    # set must not read the new one: bump SCHEMA_VERSION in schema.py to the new value.
    assert SCHEMA.version == SCHEMA_VERSION, f"feature set changed: new version {SCHEMA.version}"


def test_there_are_at_least_sixty_unique_features_in_every_required_group() -> None:
    names = SCHEMA.names
    assert len(names) >= 60
    assert len(set(names)) == len(names)
    for group in FeatureGroup:
        assert SCHEMA.group(group), f"no {group} features"
    assert all(s.description and s.warmup >= 0 for s in SPECS)


def test_changing_a_parameter_or_the_order_changes_the_version() -> None:
    def rsi_15(p: Prims) -> dict[str, object]:
        out = define(p)
        out["rsi_14"] = rsi(p, 15)
        return out

    assert FeatureSchema.build(SPECS, rsi_15).version != SCHEMA.version
    swapped = (SPECS[1], SPECS[0], *SPECS[2:])
    assert derive_version(swapped, SCHEMA.calls) != SCHEMA.version
    assert derive_version(SPECS, SCHEMA.calls, code_version="f2") != SCHEMA.version


def test_a_spec_table_that_does_not_name_what_the_definition_computes_is_refused() -> None:
    with pytest.raises(ValueError, match="missing"):
        FeatureSchema.build(SPECS[:-1], define)


def test_a_consumer_rejects_another_version_or_column_order() -> None:
    assert SCHEMA.check(SCHEMA.version, SCHEMA.names) is None
    other = SCHEMA.check("f0-000000000000")
    assert other is not None
    assert other.code is ReasonCode.FEATURE_SCHEMA_MISMATCH
    reordered = SCHEMA.check(SCHEMA.version, (SCHEMA.names[1], SCHEMA.names[0], *SCHEMA.names[2:]))
    assert reordered is not None
    assert reordered.values["first_difference"] == 0


def test_each_feature_first_has_a_value_exactly_at_its_declared_warm_up() -> None:
    # gap-free bars from midnight UTC: the worst alignment for 1h/4h and the previous day
    bars = synthetic(n_symbols=6, n_bars=1_100)
    feats = compute_offline(bars).sorted()
    n = len(bars) // len(bars.symbols)
    for j, spec in enumerate(SPECS):
        col = feats.values[:, j].reshape(len(bars.symbols), n)
        first = np.argmax(np.isfinite(col), axis=1)
        assert np.isfinite(col).any(axis=1).all(), spec.name
        assert (first == spec.warmup).all(), f"{spec.name}: first at {first}, not {spec.warmup}"


def test_no_feature_is_a_price_or_volume_level() -> None:
    # Prices x1024 and volumes /128 are exact in binary floating point: a feature that
    # moves is a level, not a ratio.
    bars = load_demo(end="2021-02-06")
    scaled = Bars(
        bars.symbols,
        bars.code,
        bars.ts,
        bars.open * 1024,
        bars.high * 1024,
        bars.low * 1024,
        bars.close * 1024,
        bars.volume / 128,
    )
    a, b = compute_offline(bars), compute_offline(scaled)
    assert np.array_equal(a.ts, b.ts)
    for j, name in enumerate(SCHEMA.names):
        assert np.array_equal(a.values[:, j], b.values[:, j], equal_nan=True), name
