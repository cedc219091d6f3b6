"""RiskConfig: documented defaults, refused nonsense."""

from __future__ import annotations

import dataclasses

import pytest

from decile.risk import RiskConfig


def test_the_docstring_states_every_default() -> None:
    doc = RiskConfig.__doc__ or ""
    for f in dataclasses.fields(RiskConfig):
        assert f"{f.name} = " in doc, f"{f.name} is not documented with its default"


def test_the_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        RiskConfig().max_daily_loss = 0.5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_daily_loss", 0.0),
        ("max_symbol_exposure", 1.5),
        ("max_open_positions", 0),
        ("cvar_alpha", 1.0),
        ("cvar_limit_r", 1.0),
        ("fee_bps", -1.0),
        ("min_p_win", 1.0),
    ],
)
def test_a_bad_limit_is_refused_naming_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        RiskConfig(**{field: value})


def test_limits_lists_every_field_for_the_start_up_log() -> None:
    assert RiskConfig().limits()["risk_per_trade"] == 0.005
    assert RiskConfig().round_trip_bps == 14.0
