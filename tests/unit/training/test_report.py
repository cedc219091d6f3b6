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
