"""decide / stale: per-bucket thresholds, reason codes, and one decision id per candidate."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from confirm_support import CLOSE, bar, candidate, minute

from decile import codec, ids
from decile.confirm import FLOW_FEATURES, ConfirmConfig, Window, decide, no_model, stale
from decile.confirm.decide import GATE_PROBABILITY, GATE_WINDOW
from decile.events import ConfirmDecision
from decile.reasons import ReasonCode

CONFIG = ConfirmConfig(approve_at=(0.5, 0.6, 0.7), invert_at=(0.2, 0.3, 0.4), inversion=True)
ROW = np.array([1.0, 2 / 3, 4.5, 0.8, 2.0, 0.5])
NOW = CLOSE + timedelta(minutes=3, seconds=1)
ATR_OF_BUCKET = {0: 0.2, 1: 0.4, 2: 1.0}  # entry 100: ATR 0.2%, 0.4%, 1.0%


def run(
    p: float, bucket: int = 2, config: ConfirmConfig = CONFIG, **overrides: object
) -> ConfirmDecision:
    c = candidate(atr=ATR_OF_BUCKET[bucket], **overrides)
    return decide(c, ROW, p, config, decided_at=NOW, model_version="1.0.0", window_bars=3)


@pytest.mark.parametrize(
    ("bucket", "p", "decision"),
    [
        (0, 0.50, "approve"), (0, 0.45, "veto"), (0, 0.20, "invert"),
        (1, 0.60, "approve"), (1, 0.55, "veto"), (1, 0.31, "veto"), (1, 0.30, "invert"),
        (2, 0.70, "approve"), (2, 0.65, "veto"), (2, 0.40, "invert"), (2, 0.41, "veto"),
    ],
)
def test_each_bucket_uses_its_own_thresholds(bucket: int, p: float, decision: str) -> None:
    d = run(p, bucket)
    assert d.decision == decision
    assert d.atr_bucket == bucket
    assert d.p_confirm == p


def test_approve_keeps_the_side_and_records_the_flow() -> None:
    d = run(0.9)
    assert d.side == "long"
    assert d.reason is None
    assert d.flow == dict(zip(FLOW_FEATURES, ROW.tolist(), strict=True))
    assert (d.window_bars, d.model_version, d.decided_at) == (3, "1.0.0", NOW)


def test_invert_trades_the_other_side() -> None:
    assert run(0.1, side="long").side == "short"
    assert run(0.1, side="short").side == "long"


def test_without_inversion_a_very_low_probability_is_a_veto() -> None:
    d = run(0.01, config=ConfirmConfig())
    assert d.decision == "veto"
    assert d.side == "long"


def test_a_low_probability_veto_says_why_with_the_compared_values() -> None:
    d = run(0.55, bucket=1)
    assert d.reason is not None
    assert d.reason.gate == GATE_PROBABILITY
    assert d.reason.code is ReasonCode.CONFIRM_LOW_PROBABILITY
    assert d.reason.values["p_confirm"] == 0.55
    assert d.reason.values["approve_at"] == 0.6
    assert d.reason.values["invert_at"] == 0.3
    assert d.reason.values["atr_bucket"] == 1


@pytest.mark.parametrize("p", [float("nan"), float("inf"), -0.1, 1.5])
def test_a_model_output_that_is_no_probability_vetoes_instead_of_crashing(p: float) -> None:
    d = run(p)
    assert d.decision == "veto"
    assert d.p_confirm is None
    assert d.reason is not None
    assert d.reason.code is ReasonCode.MODEL_NON_FINITE_OUTPUT


def test_a_malformed_feature_row_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="finite flow values"):
        decide(candidate(), ROW[:3], 0.9, CONFIG, decided_at=NOW)
    with pytest.raises(ValueError, match="finite flow values"):
        decide(candidate(), np.r_[ROW[:5], np.nan], 0.9, CONFIG, decided_at=NOW)


def test_an_expired_window_vetoes_as_stale_with_the_reason_code() -> None:
    w = Window.open(candidate(), CONFIG, opened_at=CLOSE).add_bar(bar(minute(0), 100.5))
    now = w.deadline + timedelta(seconds=1)
    assert w.expired(now)
    d = stale(w, CONFIG, now)
    assert d.decision == "veto"
    assert d.p_confirm is None
    assert d.window_bars == 1
    assert d.reason is not None
    assert d.reason.gate == GATE_WINDOW
    assert d.reason.code is ReasonCode.CONFIRM_STALE_WINDOW
    assert d.reason.values["bars_seen"] == 1
    assert d.reason.values["bars_needed"] == 3
    assert d.reason.values["waited_s"] == (now - CLOSE).total_seconds()


def test_the_decision_id_derives_from_the_candidate_and_repeats_exactly() -> None:
    c = candidate()
    first = decide(c, ROW, 0.9, CONFIG, decided_at=NOW)
    again = decide(c, ROW, 0.9, CONFIG, decided_at=NOW)
    assert first == again
    assert first.id == ids.derive(c.id, "ConfirmDecision")
    assert first.trace_id == c.trace_id
    assert ids.id_time_ms(first.id) == ids.id_time_ms(c.id)


def test_a_candidate_has_one_decision_id_whatever_the_verdict() -> None:
    c = candidate()
    approved = decide(c, ROW, 0.9, CONFIG, decided_at=NOW)
    w = Window.open(c, CONFIG, opened_at=CLOSE)
    stale_one = stale(w, CONFIG, w.deadline)
    assert stale_one.id == approved.id  # a redelivered candidate decided otherwise is dropped


def test_different_candidates_get_different_ids() -> None:
    a = decide(candidate(), ROW, 0.9, CONFIG, decided_at=NOW)
    b = decide(candidate(), ROW, 0.9, CONFIG, decided_at=NOW)
    assert a.id != b.id


def test_decisions_travel_on_the_bus_unchanged() -> None:
    for d in (run(0.9), run(0.55, bucket=1), run(float("nan"))):
        body, headers = codec.encode(d)
        assert codec.decode(body, headers) == d


def test_without_a_model_pass_approves_unscored_and_veto_names_the_missing_model() -> None:
    c = candidate(atr=ATR_OF_BUCKET[1])
    passed = no_model(c, ROW, CONFIG, approve=True, decided_at=NOW, window_bars=3,
                      fill_price_hint=100.5)
    assert (passed.decision, passed.side, passed.p_confirm, passed.model_version) == (
        "approve", "long", None, "")
    assert passed.reason is None
    assert passed.flow == dict(zip(FLOW_FEATURES, ROW.tolist(), strict=True))
    assert (passed.atr_bucket, passed.window_bars, passed.fill_price_hint) == (1, 3, 100.5)
    vetoed = no_model(c, ROW, CONFIG, approve=False, decided_at=NOW)
    assert vetoed.decision == "veto"
    assert vetoed.reason is not None
    assert vetoed.reason.gate == "confirm_model"
    assert vetoed.reason.code == ReasonCode.CONFIRM_NO_MODEL
    # one decision per candidate, whichever path: the model's path gives the same id
    scored = decide(c, ROW, 0.9, CONFIG, decided_at=NOW)
    assert passed.id == vetoed.id == scored.id == ids.derive(c.id, "ConfirmDecision")
