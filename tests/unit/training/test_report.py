import numpy as np
import pytest

from decile.training import report


def test_auc_is_one_for_a_perfect_ranking_zero_reversed_and_half_for_ties() -> None:
    y = np.array([0, 0, 1, 1])
    assert report.auc(y, [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert report.auc(y, [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert report.auc(y, [0.5] * 4) == 0.5
    assert np.isnan(report.auc([1, 1], [0.2, 0.3]))


def test_auc_counts_tied_pairs_as_half() -> None:
    # pairs (pos, neg): (0.5 vs 0.5) tie, (0.5 vs 0.1) win, (0.9 vs 0.5) win, (0.9 vs 0.1) win
    assert report.auc([0, 0, 1, 1], [0.5, 0.1, 0.5, 0.9]) == pytest.approx(3.5 / 4)


def test_pr_auc_is_one_for_a_perfect_ranking() -> None:
    assert report.pr_auc([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8]) == pytest.approx(1.0)
    assert report.pr_auc([1, 0], [0.1, 0.9]) == pytest.approx(0.5)


def test_ece_is_zero_when_each_bin_wins_as_often_as_it_predicts() -> None:
    p = np.array([0.25] * 4 + [0.75] * 4)
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    assert report.ece(y, p) == pytest.approx(0.0)
    assert report.ece([1, 1], [0.0, 0.0]) == pytest.approx(1.0)


def test_log_loss_and_pinball_match_their_definitions() -> None:
    assert report.log_loss([1, 0], [0.5, 0.5]) == pytest.approx(np.log(2))
    assert report.pinball([1.0], [0.0], 0.7) == pytest.approx(0.7)
    assert report.pinball([0.0], [1.0], 0.7) == pytest.approx(0.3)


def test_selectivity_reports_all_top_decile_and_above_floor_per_strategy() -> None:
    n = 100
    score = np.linspace(0, 1, n)
    win = (score > 0.9).astype(int)
    r = np.where(win == 1, 0.8, -1.1)
    strat = np.arange(n) % 2
    t = report.selectivity(score, win, r, strat, ("a", "b"), floor=0.95)
    assert t["all"]["all"]["n"] == n
    assert t["all"]["top_decile"] == {"n": 10, "win_rate": 1.0, "mean_r": pytest.approx(0.8)}
    assert t["all"]["top_decile_above_floor"]["n"] == 1  # 10% of the 5 rows >= 0.95, at least 1
    assert t["a"]["all"]["n"] == t["b"]["all"]["n"] == 50
    assert t["a"]["all"]["mean_r"] < 0


def test_top_decile_per_cycle_ranks_within_each_bar_time() -> None:
    # cycle 100: 12 rows -> ceil(1.2) = 2 kept; cycle 200: 3 rows -> 1; cycle 300: 1 row -> 1
    ts = np.array([100] * 12 + [200] * 3 + [300])
    score = np.r_[np.arange(12) / 100, [0.9, 0.5, 0.95], [0.01]]
    mask = report.top_decile_per_cycle(score, ts)
    assert np.flatnonzero(mask).tolist() == [10, 11, 14, 15]
    tied = report.top_decile_per_cycle(np.array([0.5, 0.5, 0.5]), np.array([1, 1, 1]))
    assert tied.tolist() == [True, False, False]  # ties: first row wins, as in top_decile
    assert not report.top_decile_per_cycle(np.array([]), np.array([])).any()


def test_selectivity_adds_the_per_cycle_row_only_when_given_ts() -> None:
    ts = np.array([1, 1, 1, 2, 2, 3])
    score = np.array([0.9, 0.1, 0.2, 0.3, 0.8, 0.4])
    win = np.array([1, 0, 0, 0, 1, 0])
    r = np.array([1.0, -1.0, -1.0, -1.0, 0.9, -0.5])
    strat = np.array([0, 0, 1, 1, 0, 1])
    without = report.selectivity(score, win, r, strat, ("a", "b"))
    assert "top_decile_per_cycle" not in without["all"]
    t = report.selectivity(score, win, r, strat, ("a", "b"), ts=ts)
    # cycle 1 keeps row 0, cycle 2 row 4, cycle 3 row 5
    assert t["all"]["top_decile_per_cycle"] == {
        "n": 3,
        "win_rate": pytest.approx(2 / 3),
        "mean_r": pytest.approx((1.0 + 0.9 - 0.5) / 3),
    }
    # per strategy the cycle is that strategy's rows at that bar: b keeps rows 2, 3, 5
    assert t["b"]["top_decile_per_cycle"]["n"] == 3
    assert t["b"]["top_decile_per_cycle"]["mean_r"] == pytest.approx(-2.5 / 3)
    assert t["all"]["top_decile"] == without["all"]["top_decile"]


def test_score_deciles_and_tables_go_from_lowest_to_highest() -> None:
    score = np.arange(100, dtype=np.float64)[::-1]
    d = report.score_deciles(score)
    assert d[-1] == 1
    assert d[0] == 10
    assert np.bincount(d).tolist() == [0] + [10] * 10
    table = report.decile_table(score, score >= 90, np.where(score >= 90, 1.0, -1.0))
    assert [row["decile"] for row in table] == list(range(1, 11))
    assert table[-1]["mean_target"] == 1.0
    assert table[0]["mean_r"] == -1.0
    rel = report.reliability([0, 1] * 50, np.linspace(0, 1, 100), bins=10)
    assert [b["n"] for b in rel] == [10] * 10
    assert rel[0]["mean_p"] < rel[-1]["mean_p"]
