"""ConfirmConfig: the documented defaults, the checks at build, buckets and thresholds."""

from __future__ import annotations

import pytest

from decile.confirm import ConfirmConfig
from decile.market.timeframes import Timeframe


def test_defaults_are_the_documented_ones() -> None:
    c = ConfirmConfig()
    assert (c.window_bars, c.window_tf, c.baseline_bars) == (3, Timeframe.M1, 30)
    assert c.max_wait_s == 60.0
    assert c.atr_edges == (0.25, 0.6)
    assert c.approve_at == (0.55, 0.55, 0.55)
    assert c.invert_at == (0.30, 0.30, 0.30)
    assert c.inversion is False
    assert c.window_ms == 180_000
    for name in ("window_bars", "window_tf", "baseline_bars", "max_wait_s", "atr_edges",
                 "approve_at", "invert_at", "inversion"):
        assert f"``{name}``" in (ConfirmConfig.__doc__ or ""), name


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"window_bars": -1}, "window_bars"),
        ({"baseline_bars": -1}, "baseline_bars"),
        ({"max_wait_s": float("inf")}, "max_wait_s"),
        ({"window_tf": "7m"}, "unknown timeframe"),
        ({"atr_edges": (0.6, 0.25)}, "strictly increasing"),
        ({"atr_edges": (0.0, 0.5)}, "positive"),
        ({"approve_at": (0.5, 0.5)}, "one threshold per ATR bucket"),
        ({"approve_at": (0.5, 0.5, 1.5)}, r"\[0, 1\]"),
        ({"invert_at": (0.3, 0.6, 0.3)}, "below approve_at"),
    ],
)
def test_a_bad_setting_is_refused_naming_it(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ConfirmConfig(**fields)  # type: ignore[arg-type]


def test_a_timeframe_given_by_name_is_parsed() -> None:
    assert ConfirmConfig(window_tf="5m").window_tf is Timeframe.M5  # type: ignore[arg-type]


def test_a_window_in_seconds_is_a_whole_number_of_bars() -> None:
    assert ConfirmConfig.with_window_seconds(180).window_bars == 3
    assert ConfirmConfig.with_window_seconds(600, window_tf=Timeframe.M5).window_bars == 2
    assert ConfirmConfig.with_window_seconds(0).window_bars == 0
    with pytest.raises(ValueError, match="whole number"):
        ConfirmConfig.with_window_seconds(90)


@pytest.mark.parametrize(
    ("atr_pct", "bucket"),
    [(0.1, 0), (0.25, 1), (0.4, 1), (0.6, 2), (5.0, 2), (float("nan"), 0)],
)
def test_buckets_are_left_closed_on_the_edges(atr_pct: float, bucket: int) -> None:
    assert ConfirmConfig().bucket(atr_pct) == bucket


def test_thresholds_hide_invert_unless_inversion_is_on() -> None:
    c = ConfirmConfig(approve_at=(0.5, 0.6, 0.7), invert_at=(0.2, 0.3, 0.4))
    assert c.thresholds(1) == (0.6, None)
    on = ConfirmConfig(approve_at=(0.5, 0.6, 0.7), invert_at=(0.2, 0.3, 0.4), inversion=True)
    assert on.thresholds(2) == (0.7, 0.4)


def test_flow_params_are_what_changes_the_features_and_nothing_else() -> None:
    base = ConfirmConfig()
    assert base.flow_params() == {
        "window_bars": 3, "window_tf": "1m", "baseline_bars": 30, "atr_edges": [0.25, 0.6],
    }
    tuned = ConfirmConfig(approve_at=(0.6, 0.6, 0.6), max_wait_s=5.0, inversion=True)
    assert tuned.flow_params() == base.flow_params()
