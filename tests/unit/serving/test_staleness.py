"""Model age and the twice-the-cadence staleness rule."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from decile.reasons import ReasonCode
from decile.registry import ModelVersion
from decile.serving import LoadedModel, is_stale, model_age_s, stale_rejection

DAY = 86_400.0


def test_age_counts_from_registration(
    versions: dict[str, ModelVersion], loaded: dict[str, LoadedModel]
) -> None:
    v = versions["entry"]
    now = v.created_at + timedelta(hours=5)
    assert model_age_s(v, now) == pytest.approx(5 * 3600)
    assert model_age_s(loaded["entry"], now) == pytest.approx(5 * 3600)
    with pytest.raises(ValueError, match="timezone-aware"):
        model_age_s(v, now.replace(tzinfo=None))


def test_stale_beyond_twice_the_cadence(versions: dict[str, ModelVersion]) -> None:
    v = replace(versions["risk"], created_at=datetime(2025, 1, 1, tzinfo=UTC))
    week = 7 * DAY
    assert not is_stale(v, week, datetime(2025, 1, 15, tzinfo=UTC))  # exactly twice: not yet
    assert is_stale(v, week, datetime(2025, 1, 15, 0, 0, 1, tzinfo=UTC))
    assert stale_rejection(v, week, datetime(2025, 1, 8, tzinfo=UTC)) is None
    rej = stale_rejection(v, week, datetime(2025, 1, 20, tzinfo=UTC))
    assert rej is not None
    assert (rej.code, rej.gate) == (ReasonCode.MODEL_STALE, "model_staleness")
    assert rej.values == {"family": "risk", "version": "1.0.0", "age_s": 19 * DAY,
                          "limit_s": 2 * week}
    with pytest.raises(ValueError, match="cadence_s"):
        is_stale(v, 0, datetime(2025, 1, 20, tzinfo=UTC))
