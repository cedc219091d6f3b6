"""evaluate(): first block wins, later gates are not run; the RiskDecision event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from risk_support import CONFIG, NOW, book, kill, position, wide

from decile.bus import subject_for
from decile.events import CandidateSignal, ConfirmDecision, RiskDecision
from decile.reasons import ReasonCode
from decile.risk import (
    GATES,
    Block,
    BookState,
    CandidateContext,
    Gate,
    RiskConfig,
    decision_event,
    evaluate,
)
from decile.subjects import Subjects

BAR_TIME = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def confirm(decision: str = "approve", side: str = "long") -> ConfirmDecision:
    candidate = CandidateSignal(
        symbol="ALT/USDT",
        tf="5m",
        bar_time=BAR_TIME,
        strategy="breakout",
        side="long",
        entry_price=100.0,
        atr=5.0,
        p_win=0.57,
        sl_katr=2.0,
        rr_target=2.0,
        offset_katr=-0.2,
        score=0.83,
        rank=1,
        cycle_size=120,
        cycle_threshold=0.74,
        score_floor=0.6,
        model_versions={"entry": "e1"},
        feature_schema="fs-v1",
        producer="inference",
    )
    return ConfirmDecision(
        trace_id=candidate.trace_id,
        candidate=candidate,
        decision=decision,
        side=side,
        decided_at=BAR_TIME + timedelta(minutes=15),
        producer="confirm",
    )


def test_approves_a_clean_candidate_after_every_gate() -> None:
    v = evaluate(wide(), book(), CONFIG)
    assert v.outcome == "approved"
    assert v.rejection is None
    assert v.checked == tuple(g.name for g in GATES)


def test_the_first_block_is_the_reason() -> None:
    b = book(kill=kill(master=True, reasons={"master": "ops"}), equity=90_000.0)  # also -10%
    v = evaluate(wide(), b, CONFIG)
    assert v.outcome == "rejected"
    assert v.rejection is not None
    assert (v.rejection.gate, v.rejection.code) == ("master_kill", ReasonCode.MASTER_KILL)
    assert v.checked == ("master_kill",)
    assert v.intent is None


def test_checked_stops_at_the_blocking_gate() -> None:
    v = evaluate(wide(), book(equity=96_000.0), CONFIG)
    assert v.rejection is not None
    assert v.rejection.code == ReasonCode.DAILY_LOSS_LIMIT
    assert v.checked == (
        "master_kill",
        "stale_data",
        "stale_model",
        "symbol_kill",
        "strategy_kill",
        "daily_loss",
    )
    assert v.snapshot["equity"] == 96_000.0


def test_later_gates_are_not_evaluated_after_a_block() -> None:
    calls: list[str] = []

    def rule(name: str, block: bool) -> Any:
        def run(c: CandidateContext, b: BookState, cfg: RiskConfig) -> Block | None:
            calls.append(name)
            return Block(ReasonCode.STALE_DATA, {"limit": 1, "value": 2}) if block else None

        return run

    gates = (Gate("a", rule("a", False)), Gate("b", rule("b", True)), Gate("c", rule("c", False)))
    v = evaluate(wide(), book(), CONFIG, gates)
    assert calls == ["a", "b"]
    assert v.checked == ("a", "b")
    assert v.rejection is not None
    assert v.rejection.gate == "b"


def test_decision_event_for_an_approval_derives_its_id_from_the_confirm() -> None:
    conf = confirm()
    v = evaluate(CandidateContext.from_confirm(conf, NOW), book(), CONFIG)
    event = decision_event(conf, v)
    again = decision_event(conf, evaluate(CandidateContext.from_confirm(conf, NOW), book(), CONFIG))
    assert isinstance(event, RiskDecision)
    assert event.id == again.id != conf.id  # a redelivered confirm gives the same decision id
    assert event.trace_id == conf.trace_id
    assert (event.outcome, event.producer, event.ts_event) == ("approved", "risk", NOW)
    assert event.intent is not None
    assert event.intent.entry_type == "limit"
    assert event.checked == tuple(g.name for g in GATES)
    assert event.snapshot["equity"] == 100_000.0
    assert subject_for(event, Subjects()) == "risk.approved.ALT-USDT"


def test_decision_event_for_a_rejection_carries_the_reason() -> None:
    conf = confirm()
    v = evaluate(CandidateContext.from_confirm(conf, NOW), book(model_age_s=None), CONFIG)
    event = decision_event(conf, v)
    assert event.outcome == "rejected"
    assert event.rejection is not None
    assert event.rejection.code == ReasonCode.MODEL_STALE
    assert event.checked == ("master_kill", "stale_data", "stale_model")
    assert subject_for(event, Subjects()) == "risk.rejected.ALT-USDT"


def test_an_inverted_confirm_trades_the_confirmed_side_and_a_veto_is_refused() -> None:
    assert CandidateContext.from_confirm(confirm("invert", "short"), NOW).side == "short"
    with pytest.raises(ValueError, match="veto"):
        CandidateContext.from_confirm(confirm("veto"), NOW)


def test_a_cap_that_leaves_nothing_is_a_rejection_not_a_zero_order() -> None:
    # only the kill gate runs, so sizing meets a symbol already at its limit
    full = book(positions=(position("ALT/USDT", notional=25_000.0),))
    v = evaluate(wide(), full, CONFIG, GATES[:1])
    assert v.outcome == "rejected"
    assert v.rejection is not None
    assert (v.rejection.gate, v.rejection.code) == ("symbol_exposure", ReasonCode.SYMBOL_EXPOSURE)
