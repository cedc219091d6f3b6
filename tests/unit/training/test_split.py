import inspect

import numpy as np
import pytest

import decile.training.split as split_mod
from decile.training.split import chronological_split, walk_forward

BAR = 300_000
H = 6


def _ts(n_bars: int = 1_000, n_sym: int = 7) -> np.ndarray:
    rng = np.random.default_rng(1)
    ts = np.repeat(np.arange(n_bars, dtype=np.int64) * BAR, n_sym)
    return rng.permutation(ts)  # row order must not matter


def test_train_times_precede_validation_precede_test_with_the_embargo_gap() -> None:
    ts = _ts()
    sp = chronological_split(ts, horizon=H, bar_ms=BAR)
    tr, va, te = ts[sp.train], ts[sp.validation], ts[sp.test]
    assert tr.max() < va.min() < va.max() < te.min()
    assert va.min() - tr.max() > H * BAR
    assert te.min() - va.max() > H * BAR
    assert tr.max() + H * BAR < sp.val_start <= va.min()
    assert va.max() + H * BAR < sp.test_start <= te.min()


def test_blocks_are_about_seventy_fifteen_fifteen_and_account_for_every_row() -> None:
    ts = _ts()
    sp = chronological_split(ts, horizon=H, bar_ms=BAR)
    n = len(ts)
    assert len(sp.train) + len(sp.validation) + len(sp.test) + sp.dropped == n
    assert sp.dropped == 2 * H * 7
    assert abs(len(sp.train) / n - 0.70) < 0.02
    assert abs(len(sp.test) / n - 0.15) < 0.02
    assert len(np.intersect1d(sp.train, sp.test)) == 0


def test_an_embargo_shorter_than_the_horizon_is_refused() -> None:
    with pytest.raises(ValueError, match="embargo"):
        chronological_split(_ts(), horizon=H, bar_ms=BAR, embargo_bars=H - 1)


def test_a_longer_embargo_widens_the_gap() -> None:
    ts = _ts()
    sp = chronological_split(ts, horizon=H, bar_ms=BAR, embargo_bars=20)
    assert ts[sp.validation].min() - ts[sp.train].max() > 20 * BAR


def test_no_split_function_offers_a_random_or_shuffled_split() -> None:
    for fn in (chronological_split, walk_forward):
        params = set(inspect.signature(fn).parameters)
        assert not params & {"shuffle", "random_state", "seed", "random"}
    src = inspect.getsource(split_mod)
    assert "permutation" not in src
    assert "shuffle(" not in src


def test_walk_forward_folds_are_chronological_and_embargoed() -> None:
    ts = _ts()
    folds = walk_forward(ts, horizon=H, bar_ms=BAR, n_windows=3)
    assert len(folds) == 3
    prev_test_end = -1
    for sp in folds:
        tr, va, te = ts[sp.train], ts[sp.validation], ts[sp.test]
        assert tr.max() + H * BAR < va.min()
        assert va.max() + H * BAR < te.min()
        assert te.min() > prev_test_end
        prev_test_end = int(te.max())
    assert prev_test_end == ts.max()
