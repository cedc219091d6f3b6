"""Confirm service settings: fleet defaults, the window in seconds, refusals at start."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from decile.confirm import ConfirmConfig
from decile.market.timeframes import Timeframe
from decile_confirm.settings import ConfirmSection, ConfirmSettings


def test_the_fleet_defaults_wait_one_5m_bar_on_the_wall_clock_and_pass_without_a_model() -> None:
    s = ConfirmSettings().confirm
    assert (s.clock, s.without_model) == ("wall", "pass")
    config = s.config()
    assert (config.window_bars, config.window_tf) == (1, Timeframe.M5)
    assert config == ConfirmConfig.fleet()  # the trainer's defaults: its models fit


def test_a_window_in_seconds_becomes_whole_bars_of_the_window_timeframe() -> None:
    assert ConfirmSection(window_seconds=900).config().window_bars == 3
    assert ConfirmSection(window_tf="1m", window_seconds=120).config().window_bars == 2
    with pytest.raises(ValidationError, match="not a whole number of 5m bars"):
        ConfirmSection(window_seconds=100)
    with pytest.raises(ValidationError, match="window_bars or window_seconds"):
        ConfirmSection(window_bars=2, window_seconds=600)


def test_settings_come_from_the_environment_and_bad_thresholds_stop_the_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DECILE_CONFIRM__CLOCK", "event")
    monkeypatch.setenv("DECILE_CONFIRM__ATR_EDGES", "[0.3]")
    monkeypatch.setenv("DECILE_CONFIRM__APPROVE_AT", "[0.5, 0.6]")
    monkeypatch.setenv("DECILE_CONFIRM__INVERT_AT", "[0.2, 0.2]")
    s = ConfirmSettings().confirm
    assert s.clock == "event"
    assert s.config().atr_edges == (0.3,)
    monkeypatch.setenv("DECILE_CONFIRM__APPROVE_AT", "[0.5, 0.6, 0.7]")
    with pytest.raises(ValidationError, match="one threshold per ATR bucket"):
        ConfirmSettings()


def test_the_history_always_covers_a_window_and_its_baseline() -> None:
    assert ConfirmSection(history_bars=5, baseline_bars=30, window_bars=3).history_keep == 34
    assert ConfirmSection().history_keep == 1_000
