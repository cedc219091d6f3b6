import numpy as np
import pytest

from decile.training.labels import LabelConfig, label_trades

BAR = 300_000
NO_COST = LabelConfig(horizon=3, fee_bps=0.0, slippage_bps=0.0)


def _label(  # type: ignore[no-untyped-def]
    high, low, close, side=1, cfg=NO_COST, rows=(0,), atr=1.0, code=None, ts=None, bar_ms=None
):
    n = len(close)
    return label_trades(
        np.zeros(n, np.int32) if code is None else code,
        np.arange(n, dtype=np.int64) * BAR if ts is None else ts,
        np.asarray(high, float),
        np.asarray(low, float),
        np.asarray(close, float),
        np.full(n, atr),
        np.asarray(rows),
        np.full(len(rows), side),
        cfg,
        bar_ms,
    )


def test_long_wins_when_plus_one_r_comes_before_minus_one_r() -> None:
    lab = _label([100, 100.5, 101.2, 100], [100, 99.5, 100.5, 99], [100, 100, 101, 99.5])
    assert lab.valid.tolist() == [True]
    assert lab.win[0] == 1
    assert lab.realised_r[0] == pytest.approx(1.0)


def test_a_bar_touching_both_barriers_counts_as_a_loss() -> None:
    lab = _label([100, 101.5, 100, 100], [100, 98.5, 100, 100], [100, 100, 100, 100])
    assert lab.win[0] == 0
    assert lab.realised_r[0] == pytest.approx(-1.0)


def test_timeout_realises_the_close_at_the_horizon() -> None:
    lab = _label([100, 100.5, 100.5, 100.5], [100, 99.5, 99.5, 99.5], [100, 100, 100, 100.4])
    assert lab.win[0] == 0
    assert lab.realised_r[0] == pytest.approx(0.4)


def test_short_is_the_mirror_of_long() -> None:
    lab = _label([100, 100.5, 100.2, 100], [100, 99.5, 98.9, 99], [100, 100, 99, 99], side=-1)
    assert lab.win[0] == 1
    assert lab.realised_r[0] == pytest.approx(1.0)


def test_round_trip_costs_are_taken_from_realised_r() -> None:
    cfg = LabelConfig(horizon=3, fee_bps=10.0, slippage_bps=5.0)
    lab = _label([100, 101.2, 100, 100], [100, 99.8, 100, 100], [100, 101, 100, 100], cfg=cfg)
    # 2 x 15 bps of a 100 entry = 0.30 price = 0.30 R at ATR 1
    assert lab.win[0] == 1
    assert lab.realised_r[0] == pytest.approx(1.0 - 0.30)


def test_r_scales_with_k_times_atr() -> None:
    cfg = LabelConfig(horizon=3, k_atr=2.0, fee_bps=0.0, slippage_bps=0.0)
    lab = _label([100, 101.5, 101.5, 101.5], [100, 99.9, 99.9, 99.9], [100, 101, 101, 101], cfg=cfg)
    assert lab.win[0] == 0
    assert lab.realised_r[0] == pytest.approx(0.5)


def test_mae_is_the_worst_adverse_move_over_the_horizon_in_atr() -> None:
    lab = _label([100, 100.5, 101.2, 100], [100, 99.4, 100.5, 99.1], [100, 100, 101, 99.5], atr=2.0)
    assert lab.mae_atr[0] == pytest.approx(0.45)


def test_best_offset_prefers_a_limit_entry_when_price_dips_first() -> None:
    # dips 0.2 ATR (fills the -0.15 limit, not -0.25), then runs to +1R of that entry
    high = [100, 100.1, 100.9, 100.95]
    low = [100, 99.8, 100.0, 100.5]
    lab = _label(high, low, [100, 100, 100.8, 100.9])
    assert lab.best_offset[0] == pytest.approx(-0.15)


def test_labels_ignore_bars_before_the_entry_and_after_the_horizon() -> None:
    high = np.array([100, 100, 100.5, 101.2, 100, 150.0])
    low = np.array([100, 100, 99.5, 100.5, 99, 50.0])
    close = np.array([100, 100, 100, 101, 99.5, 100.0])
    a = _label(high, low, close, rows=(1,))
    b = _label(high * [9, 1, 1, 1, 1, 3], low * [0.1, 1, 1, 1, 1, 0.2], close, rows=(1,))
    for field in ("win", "realised_r", "mae_atr", "best_offset"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.win[0] == 1


def test_rows_whose_horizon_leaves_the_symbol_are_dropped_and_counted() -> None:
    code = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1], np.int32)
    close = np.full(9, 100.0)
    lab = _label(close + 0.1, close - 0.1, close, rows=(0, 1, 2, 5), code=code)
    assert lab.valid.tolist() == [True, True, False, True]
    assert lab.dropped == 1
    assert np.isnan(lab.realised_r[2])


def test_a_gap_inside_the_horizon_drops_the_row_when_the_bar_length_is_given() -> None:
    ts = np.array([0, 1, 2, 5, 6, 7, 8], dtype=np.int64) * BAR
    close = np.full(7, 100.0)
    lab = _label(close + 0.1, close - 0.1, close, rows=(0, 3), ts=ts, bar_ms=BAR)
    assert lab.valid.tolist() == [False, True]


def test_a_horizon_below_one_bar_is_refused() -> None:
    with pytest.raises(ValueError, match="horizon"):
        LabelConfig(horizon=0)
