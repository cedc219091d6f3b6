"""The open window: which bars it takes, when it is complete or stale, and its persisted form."""

from __future__ import annotations

import json
from datetime import UTC, timedelta

import pytest
from confirm_support import CLOSE, CLOSE_MS, MINUTE_MS, bar, bars_of, candidate, minute

from decile.confirm import ConfirmConfig, Window
from decile.confirm.window import from_ms
from decile.market.bars import Bars
from decile.market.timeframes import Timeframe

CONFIG = ConfirmConfig(window_bars=3, baseline_bars=4, max_wait_s=30.0)


def opened(**overrides: object) -> Window:
    return Window.open(candidate(**overrides), CONFIG, opened_at=CLOSE + timedelta(seconds=2))


def test_window_starts_at_the_candidate_bar_close_and_ends_after_its_bars() -> None:
    w = opened()
    assert w.start_ms == CLOSE_MS
    assert w.end_ms == CLOSE_MS + 3 * MINUTE_MS
    assert w.deadline == from_ms(w.end_ms) + timedelta(seconds=30)
    assert w.need == 3
    assert w.tf is Timeframe.M1


def test_a_window_coarser_than_the_gap_starts_at_the_next_bar_boundary() -> None:
    cfg = ConfirmConfig(window_bars=1, window_tf=Timeframe.M15)
    w = Window.open(candidate(), cfg, opened_at=CLOSE)  # closes 12:05, next 15m bar 12:15
    assert w.start_ms == CLOSE_MS + 10 * MINUTE_MS


def test_bars_complete_the_window_in_any_order() -> None:
    w = opened().add_bar(bar(minute(2), 101.0)).add_bar(bar(minute(0), 100.5))
    assert not w.complete
    w = w.add_bar(bar(minute(1), 99.8))
    assert w.complete
    assert [b.ts for b in w.bars] == [minute(0), minute(1), minute(2)]
    assert w.last_close == 101.0


@pytest.mark.parametrize(
    "ts",
    [minute(-5), minute(3), minute(0) + 30_000, minute(-1) + 30_000],
    ids=[
        "before the baseline",
        "after the window",
        "not on a 1m boundary",
        "in the baseline, not on a boundary",
    ],
)
def test_bars_outside_the_window_and_its_baseline_are_ignored(ts: int) -> None:
    w = opened()
    assert w.add_bar(bar(ts, 100.0)) is w


def test_a_baseline_bar_arriving_after_the_candidate_fills_the_baseline() -> None:
    """The race of the service: the candidate of bar T opens before the cross-section of T."""
    c = candidate()
    history = [bar(minute(k), 100.0 + k) for k in (-4, -3, -2)]
    own = bar(minute(-1), 99.5, 17.0)
    late = Window.open(c, CONFIG, opened_at=CLOSE, history=history).add_bar(own)
    assert [b.ts for b in late.baseline] == [minute(k) for k in range(-4, 0)]
    assert late.baseline[-1].volume == 17.0
    assert late.bars == ()
    assert late.add_bar(bar(minute(-1), 150.0)) is late  # the first copy wins
    in_time = Window.open(c, CONFIG, opened_at=CLOSE, history=[*history, own])
    assert late == in_time  # same window whichever came first: same features


def test_a_redelivered_bar_changes_nothing_and_the_first_copy_wins() -> None:
    w = opened().add_bar(bar(minute(0), 100.5))
    again = w.add_bar(bar(minute(0), 150.0))
    assert again is w
    assert w.bars[0].close == 100.5


def test_history_before_the_window_becomes_the_baseline_limited_to_its_length() -> None:
    history = [bar(minute(k), 100.0 + k) for k in range(-6, 0)]
    w = Window.open(candidate(), CONFIG, opened_at=CLOSE, history=history)
    assert [b.ts for b in w.baseline] == [minute(k) for k in range(-4, 0)]
    assert w.bars == ()


def test_history_of_other_symbols_is_ignored() -> None:
    mine = bars_of("BTC/USDT", [bar(minute(-1), 100.0)])
    theirs = bars_of("ETH/USDT", [bar(minute(-2), 3000.0), bar(minute(0), 3001.0)])
    w = Window.open(candidate(), CONFIG, opened_at=CLOSE, history=Bars.concat([mine, theirs]))
    assert [b.ts for b in w.baseline] == [minute(-1)]
    assert w.bars == ()


def test_a_late_candidate_counts_the_window_bars_already_in_history() -> None:
    history = [bar(minute(k), 100.0) for k in range(-2, 3)]
    w = Window.open(candidate(), CONFIG, opened_at=CLOSE + timedelta(minutes=5), history=history)
    assert w.complete
    assert len(w.baseline) == 2


def test_a_zero_bar_window_is_complete_at_once() -> None:
    w = Window.open(candidate(), ConfirmConfig(window_bars=0), opened_at=CLOSE)
    assert w.complete
    assert w.ready(CLOSE)
    assert w.end_ms == CLOSE_MS


def test_an_incomplete_window_expires_at_its_deadline_not_before() -> None:
    w = opened().add_bar(bar(minute(0), 100.5))
    assert not w.expired(w.deadline - timedelta(milliseconds=1))
    assert w.expired(w.deadline)
    assert w.ready(w.deadline)


def test_a_complete_window_never_expires() -> None:
    w = opened().add_bars([bar(minute(k), 100.0) for k in range(3)])
    assert not w.expired(w.deadline + timedelta(hours=1))


def test_state_survives_a_json_round_trip() -> None:
    history = [bar(minute(k), 99.0 + 0.5 * k, 12.0 + k) for k in range(-4, 0)]
    w = Window.open(candidate(), CONFIG, opened_at=CLOSE, history=history)
    w = w.add_bar(bar(minute(0), 100.5, 20.0)).add_bar(bar(minute(2), 101.25, 30.0))
    restored = Window.from_dict(json.loads(json.dumps(w.to_dict())))
    assert restored == w
    assert restored.candidate.id == w.candidate.id
    assert restored.opened_at.tzinfo is UTC
    # and it carries on exactly where it stopped
    done = restored.add_bar(bar(minute(1), 99.8, 10.0))
    assert done.complete
    assert done.features(CONFIG, 0.5).tolist() == w.add_bar(
        bar(minute(1), 99.8, 10.0)
    ).features(CONFIG, 0.5).tolist()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": 99}, "format"),
        ({"bars": [[1, 2.0]]}, "a bar is"),
        ({"opened_at": "2024-03-01T12:05:00"}, "no zone"),
        ({"need": None}, "unreadable"),
    ],
)
def test_a_damaged_state_is_refused_with_a_reason(change: dict[str, object], message: str) -> None:
    doc = opened().to_dict() | change
    with pytest.raises(ValueError, match=message):
        Window.from_dict(doc)


def test_a_naive_opening_time_is_refused() -> None:
    with pytest.raises(ValueError, match="zone"):
        Window.open(candidate(), CONFIG, opened_at=CLOSE.replace(tzinfo=None))
