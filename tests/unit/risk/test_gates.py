"""Each gate: one case that blocks (code and compared values) and one that passes."""

from __future__ import annotations

import numpy as np
import pytest
from risk_support import BAR, CONFIG, NOW, book, correlated_returns, ctx, kill, position

from decile.events.base import Rejection
from decile.reasons import ReasonCode
from decile.risk import BY_NAME, GATES, BookState, CandidateContext, RiskConfig


def check(
    name: str,
    c: CandidateContext | None = None,
    b: BookState | None = None,
    config: RiskConfig = CONFIG,
) -> Rejection | None:
    return BY_NAME[name].check(c or ctx(), b or book(), config)


def test_gates_run_cheapest_first_in_the_designed_order() -> None:
    assert [g.name for g in GATES] == [
        "master_kill",
        "stale_data",
        "stale_model",
        "symbol_kill",
        "strategy_kill",
        "daily_loss",
        "drawdown",
        "max_open_positions",
        "symbol_exposure",
        "cluster_exposure",
        "book_correlation",
        "cvar_budget",
        "net_ev",
        "win_probability_floor",
    ]


def test_every_gate_passes_the_clean_candidate_on_the_clean_book() -> None:
    assert [g.name for g in GATES if g.check(ctx(), book(), CONFIG)] == []


# ---- kill switches ---------------------------------------------------------------------


def test_rejects_when_the_master_switch_is_on() -> None:
    r = check("master_kill", b=book(kill=kill(master=True, reasons={"master": "exchange down"})))
    assert r is not None
    assert (r.gate, r.code) == ("master_kill", ReasonCode.MASTER_KILL)
    assert r.values == {"switch": "master", "reason": "exchange down", "auto": ""}
    assert r.detail == "MASTER_KILL: switch=master, reason=exchange down, auto="


def test_rejects_when_an_automatic_halt_is_on() -> None:
    state = kill(auto=frozenset({"daily_loss"}), reasons={"auto.daily_loss": "latched"})
    r = check("master_kill", b=book(kill=state))
    assert r is not None
    assert r.code == ReasonCode.MASTER_KILL
    assert r.values == {"switch": "auto.daily_loss", "reason": "latched", "auto": "daily_loss"}


def test_master_kill_passes_when_no_switch_is_on() -> None:
    assert check("master_kill", b=book(kill=kill(symbols=frozenset({"ETH/USDT"})))) is None


def test_rejects_a_killed_symbol() -> None:
    state = kill(symbols=frozenset({"BTC/USDT"}), reasons={"symbol.BTC-USDT": "delisting"})
    r = check("symbol_kill", b=book(kill=state))
    assert r is not None
    assert r.code == ReasonCode.SYMBOL_KILL
    assert r.values == {"switch": "symbol.BTC-USDT", "symbol": "BTC/USDT", "reason": "delisting"}


def test_symbol_kill_passes_another_symbol() -> None:
    assert check("symbol_kill", b=book(kill=kill(symbols=frozenset({"ETH/USDT"})))) is None


def test_rejects_a_killed_strategy() -> None:
    state = kill(strategies=frozenset({"breakout"}), reasons={"strategy.breakout": "bug 42"})
    r = check("strategy_kill", b=book(kill=state))
    assert r is not None
    assert r.code == ReasonCode.STRATEGY_KILL
    assert r.values == {"switch": "strategy.breakout", "strategy": "breakout", "reason": "bug 42"}


def test_strategy_kill_passes_another_strategy() -> None:
    assert check("strategy_kill", b=book(kill=kill(strategies=frozenset({"meanrev"})))) is None


# ---- freshness -------------------------------------------------------------------------


def test_rejects_stale_data_when_the_last_bar_closed_three_bars_ago() -> None:
    last = NOW - 4 * BAR  # opened 12:00, closed 12:05: 15 minutes = 3 bars before 12:20
    r = check("stale_data", b=book(last_bar_time={"BTC/USDT": last}))
    assert r is not None
    assert r.code == ReasonCode.STALE_DATA
    assert r.values == {"limit": 2.0, "value": 3.0, "last_bar_time": last.isoformat()}
    assert r.detail.startswith("STALE_DATA: limit=2, value=3, last_bar_time=")


def test_rejects_stale_data_when_the_symbol_never_had_a_bar() -> None:
    r = check("stale_data", b=book(last_bar_time={}))
    assert r is not None
    assert r.values == {"limit": 2.0, "value": None, "last_bar_time": None}


def test_stale_data_passes_a_bar_closed_exactly_at_the_limit() -> None:
    assert check("stale_data", b=book(last_bar_time={"BTC/USDT": NOW - 3 * BAR})) is None


def test_rejects_a_model_older_than_its_limit() -> None:
    r = check("stale_model", b=book(model_age_s=15 * 86_400.0))
    assert r is not None
    assert r.code == ReasonCode.MODEL_STALE
    assert r.values == {"limit": 14 * 86_400.0, "value": 15 * 86_400.0}


def test_rejects_a_model_of_unknown_age() -> None:
    r = check("stale_model", b=book(model_age_s=None))
    assert r is not None
    assert r.values == {"limit": 14 * 86_400.0, "value": None}


def test_stale_model_passes_a_model_at_its_age_limit() -> None:
    assert check("stale_model", b=book(model_age_s=14 * 86_400.0)) is None


# ---- losses ----------------------------------------------------------------------------


def test_rejects_when_daily_loss_limit_hit() -> None:
    r = check("daily_loss", b=book(equity=97_000.0))
    assert r is not None
    assert r.code == ReasonCode.DAILY_LOSS_LIMIT
    assert r.values == {
        "limit": 0.03,
        "value": 0.03,
        "pnl_today": -3_000.0,
        "start_of_day_equity": 100_000.0,
    }
    assert r.detail == (
        "DAILY_LOSS_LIMIT: limit=0.03, value=0.03, pnl_today=-3000, start_of_day_equity=100000"
    )


def test_daily_loss_passes_just_below_the_limit() -> None:
    assert check("daily_loss", b=book(equity=97_100.0)) is None


def test_rejects_when_drawdown_from_peak_reaches_the_limit() -> None:
    r = check(
        "drawdown", b=book(equity=99_000.0, start_of_day_equity=99_000.0, peak_equity=110_000.0)
    )
    assert r is not None
    assert r.code == ReasonCode.DRAWDOWN_LIMIT
    assert r.values == {
        "limit": 0.10,
        "value": pytest.approx(11_000 / 110_000),
        "equity": 99_000.0,
        "peak_equity": 110_000.0,
    }


def test_drawdown_passes_below_the_limit() -> None:
    assert check("drawdown", b=book(peak_equity=105_000.0)) is None


# ---- concentration ---------------------------------------------------------------------


def test_rejects_when_max_open_positions_reached() -> None:
    positions = tuple(position(f"C{i}/USDT") for i in range(10))
    r = check("max_open_positions", b=book(positions=positions))
    assert r is not None
    assert r.code == ReasonCode.MAX_OPEN_POSITIONS
    assert r.values == {"limit": 10, "value": 10}


def test_max_open_positions_passes_one_below() -> None:
    positions = tuple(position(f"C{i}/USDT") for i in range(9))
    assert check("max_open_positions", b=book(positions=positions)) is None


def test_rejects_when_the_symbol_has_no_exposure_headroom() -> None:
    held = (
        position("BTC/USDT", notional=12_000.0),
        position("BTC/USDT", side="short", notional=8_000.0),
    )
    r = check("symbol_exposure", b=book(positions=held))
    assert r is not None
    assert r.code == ReasonCode.SYMBOL_EXPOSURE
    assert r.values == {  # gross: a short does not offset a long
        "limit": 0.2,
        "value": 0.2,
        "symbol": "BTC/USDT",
        "notional": 20_000.0,
        "equity": 100_000.0,
    }


def test_symbol_exposure_passes_with_headroom() -> None:
    assert (
        check("symbol_exposure", b=book(positions=(position("BTC/USDT", notional=19_000.0),)))
        is None
    )


def test_rejects_when_the_cluster_has_no_exposure_headroom() -> None:
    clusters = {"BTC/USDT": "majors", "ETH/USDT": "majors"}
    held = (position("ETH/USDT", notional=40_000.0, cluster="majors"),)
    r = check("cluster_exposure", b=book(positions=held, clusters=clusters))
    assert r is not None
    assert r.code == ReasonCode.CLUSTER_EXPOSURE
    assert r.values == {
        "limit": 0.4,
        "value": 0.4,
        "cluster": "majors",
        "notional": 40_000.0,
        "equity": 100_000.0,
    }


def test_cluster_exposure_passes_another_cluster_full() -> None:
    held = (position("ETH/USDT", notional=45_000.0, cluster="majors"),)
    assert (
        check("cluster_exposure", b=book(positions=held, clusters={"ETH/USDT": "majors"})) is None
    )


def test_rejects_a_symbol_moving_with_the_book() -> None:
    eth, btc = correlated_returns(rho=0.95)
    b = book(positions=(position("ETH/USDT"),), returns={"ETH/USDT": eth, "BTC/USDT": btc})
    r = check("book_correlation", b=b)
    assert r is not None
    assert r.code == ReasonCode.BOOK_CORRELATION
    assert r.values["limit"] == 0.8
    assert r.values["value"] == pytest.approx(float(np.corrcoef(btc, eth)[0, 1]))
    assert r.values["value"] > 0.9
    assert r.values["observations"] == 200


def test_book_correlation_limit_applies_to_its_size_so_a_mirror_short_is_refused_too() -> None:
    eth, btc = correlated_returns(rho=0.95)
    b = book(positions=(position("ETH/USDT"),), returns={"ETH/USDT": eth, "BTC/USDT": btc})
    r = check("book_correlation", c=ctx(side="short"), b=b)
    assert r is not None
    assert r.values["value"] < -0.9  # signed by the new side: it offsets the book


def test_book_correlation_passes_an_unrelated_symbol_and_too_short_a_history() -> None:
    eth, _ = correlated_returns(seed=1)
    _, btc = correlated_returns(seed=2, rho=0.0)
    b = book(positions=(position("ETH/USDT"),), returns={"ETH/USDT": eth, "BTC/USDT": btc})
    assert check("book_correlation", b=b) is None
    eth, btc = correlated_returns(n=20, rho=0.99)
    short = book(positions=(position("ETH/USDT"),), returns={"ETH/USDT": eth, "BTC/USDT": btc})
    assert check("book_correlation", b=short) is None  # 20 < min_correlation_obs = 30


# ---- tail, edge, probability -----------------------------------------------------------


def test_rejects_when_the_realised_tail_is_fatter_than_the_cvar_limit() -> None:
    r = check("cvar_budget", b=book(recent_r=(2.0,) * 19 + (-3.0,)))
    assert r is not None
    assert r.code == ReasonCode.CVAR_BUDGET
    # worst 5% of 20 trades = the one -3R trade
    assert r.values == {"limit": -2.5, "value": -3.0, "alpha": 0.95, "trades": 20}


def test_rejects_when_the_book_tail_budget_is_spent() -> None:
    # risk 2,000 at the -1.5R prior CVaR = 3,000 tail loss = 3% of equity, the whole budget
    held = (position("ETH/USDT", risk_amount=1_200.0), position("SOL/USDT", risk_amount=800.0))
    r = check("cvar_budget", b=book(positions=held))
    assert r is not None
    assert r.code == ReasonCode.CVAR_BUDGET
    assert r.values == {"limit": 0.03, "value": 0.03, "cvar_r": -1.5, "book_tail": 3_000.0}


def test_cvar_budget_passes_a_thin_tail_with_headroom() -> None:
    held = (position("ETH/USDT", risk_amount=1_000.0),)
    assert check("cvar_budget", b=book(positions=held, recent_r=(1.0,) * 30 + (-1.2,) * 10)) is None


def test_rejects_negative_net_expected_value() -> None:
    # gross = 0.3 x 2 - 0.7 = -0.1R; costs 14 bps x 62,250 / 615.75 = 0.14153R
    r = check("net_ev", c=ctx(p_win=0.3))
    assert r is not None
    assert r.code == ReasonCode.NEGATIVE_NET_EV
    cost = 0.0014 * 62_250 / 615.75
    assert r.values == {
        "limit": 0.0,
        "value": pytest.approx(-0.1 - cost),
        "gross_r": pytest.approx(-0.1),
        "cost_r": pytest.approx(cost),
    }


def test_rejects_when_costs_exceed_their_share_of_the_edge() -> None:
    # a 0.5 ATR stop (205.25) makes the same 87.15 of costs 0.4246R of a 0.71R edge (60%)
    r = check("net_ev", c=ctx(sl_katr=0.5))
    assert r is not None
    assert r.code == ReasonCode.COSTS_EXCEED_EDGE
    cost = 87.15 / 205.25
    assert r.values == {
        "limit": 0.4,
        "value": pytest.approx(cost / 0.71),
        "gross_r": pytest.approx(0.71),
        "cost_r": pytest.approx(cost),
    }


def test_net_ev_passes_a_positive_edge_whose_costs_are_a_small_share() -> None:
    assert check("net_ev") is None  # 0.1415R of costs on a 0.71R edge: 20%


def test_rejects_below_the_win_probability_floor() -> None:
    r = check("win_probability_floor", c=ctx(p_win=0.49))
    assert r is not None
    assert r.code == ReasonCode.WIN_PROBABILITY_FLOOR
    assert r.values == {"limit": 0.5, "value": 0.49}
    assert r.detail == "WIN_PROBABILITY_FLOOR: limit=0.5, value=0.49"


def test_win_probability_floor_passes_at_the_floor() -> None:
    assert check("win_probability_floor", c=ctx(p_win=0.5)) is None


def test_a_non_finite_comparison_is_reported_as_text_not_a_crash() -> None:
    r = check("symbol_exposure", b=book(equity=0.0, positions=(position("BTC/USDT"),)))
    assert r is not None
    assert r.values["value"] == "inf"
