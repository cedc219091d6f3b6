"""The rolling win rate against the model's own expectation: when to ask for a retrain."""

from __future__ import annotations

from decile.reasons import ReasonCode
from decile.risk.outcomes import WinRateMonitor
from tests.unit.event_factories import trade_closed


def feed(monitor: WinRateMonitor, n: int, *, win_every: int, p_win: float) -> list[object]:
    out = []
    for i in range(n):
        r = 1.0 if i % win_every == 0 else -1.0
        out.append(monitor.add(trade_closed(decision_id=f"d{len(monitor.seen)}", realised_r=r,
                                            p_win=p_win)))
    return [x for x in out if x is not None]


def test_no_request_before_a_full_window_even_when_far_off() -> None:
    monitor = WinRateMonitor(window=500)
    assert feed(monitor, 499, win_every=10, p_win=0.6) == []
    assert monitor.trades == 499


def test_a_gap_over_five_points_requests_once_per_window() -> None:
    monitor = WinRateMonitor(window=500)
    requests = feed(monitor, 500, win_every=2, p_win=0.6)  # 50% won vs 60% expected
    assert len(requests) == 1
    rejection = requests[0]
    assert rejection.code == ReasonCode.WIN_RATE_DEVIATION  # type: ignore[attr-defined]
    assert rejection.values == {"win_rate": 0.5, "expected": 0.6,  # type: ignore[attr-defined]
                                "trades": 500, "max_gap": 0.05}
    assert feed(monitor, 499, win_every=2, p_win=0.6) == []  # the same evidence, mostly
    assert len(feed(monitor, 1, win_every=2, p_win=0.6)) == 1  # a fresh window


def test_within_five_points_is_fine_and_repeats_are_not_counted() -> None:
    monitor = WinRateMonitor(window=500)
    assert feed(monitor, 500, win_every=2, p_win=0.54) == []
    again = trade_closed(decision_id="d0", realised_r=-1.0, p_win=0.9)
    assert monitor.add(again) is None
    assert monitor.trades == 500
    assert monitor.win_rate == 0.5
