"""No feature looks ahead: a value at time t depends only on bars up to t.

Offline: cutting the history at a random t, or scrambling every bar after t,
changes no value at or before t. Online: the engine only ever receives the
cycle at hand and refuses one from the past, so it cannot look ahead by
construction; its parity with the offline engine carries the offline check over.
"""

import numpy as np
import pytest
from features_support import mismatches, real_bars

from decile.features import OfflineFeatures, OnlineEngine, compute_offline
from decile.market.bars import Bars
from decile.market.loaders import iter_cycles


def rows_until(feats: OfflineFeatures, t: int) -> OfflineFeatures:
    keep = feats.ts <= t
    return OfflineFeatures(
        feats.symbols,
        feats.code[keep],
        feats.ts[keep],
        feats.values[keep],
        feats.names,
        feats.schema_version,
        feats.source_rows[keep],
    )


def assert_same_past(full: OfflineFeatures, partial: OfflineFeatures, t: int) -> None:
    past = rows_until(full, t)
    assert np.array_equal(past.code, partial.code)
    assert np.array_equal(past.ts, partial.ts)
    bad = mismatches(past.values, partial.values)
    assert not bad.any(), {n: int(b) for n, b in zip(full.names, bad, strict=True) if b}


def cut_times(bars: Bars, n: int, seed: int) -> list[int]:
    times = np.unique(bars.ts)
    rng = np.random.default_rng(seed)
    return sorted(int(t) for t in rng.choice(times[300:], size=n, replace=False))


def scramble_after(bars: Bars, t: int, seed: int) -> Bars:
    """Every bar after ``t`` replaced by a different, still valid, bar."""
    rng = np.random.default_rng(seed)
    future = bars.ts > t
    k = rng.uniform(0.5, 2.0, len(bars))
    f = np.where(future, k, 1.0)
    vol = np.where(future, rng.uniform(0.0, 3.0, len(bars)), 1.0)
    return Bars(
        bars.symbols,
        bars.code,
        bars.ts,
        bars.open * f,
        bars.high * f,
        bars.low * f,
        bars.close * f,
        bars.volume * vol,
    )


def test_cutting_the_history_at_random_times_changes_no_earlier_value(demo: Bars) -> None:
    full = compute_offline(demo).sorted()
    for t in cut_times(demo, 5, seed=3):
        assert_same_past(full, compute_offline(demo.between(None, t + 1)).sorted(), t)


def test_scrambling_every_bar_after_t_changes_nothing_up_to_t(demo: Bars) -> None:
    full = compute_offline(demo).sorted()
    for i, t in enumerate(cut_times(demo, 3, seed=4)):
        scrambled = compute_offline(scramble_after(demo, t, seed=i)).sorted()
        assert_same_past(full, rows_until(scrambled, t), t)


def test_cutting_real_110_pair_history_changes_no_earlier_value() -> None:
    bars = real_bars(start="2021-02-01", end="2021-02-08")
    full = compute_offline(bars).sorted()
    for t in cut_times(bars, 3, seed=5):
        assert_same_past(full, compute_offline(bars.between(None, t + 1)).sorted(), t)


def test_online_rows_up_to_t_do_not_depend_on_what_comes_after(demo: Bars) -> None:
    bars = demo.between(None, int(demo.ts[0]) + 600 * 300_000)
    t = int(np.unique(bars.ts)[400])
    a, b = OnlineEngine(), OnlineEngine()
    for (_, x), (_, y) in zip(
        iter_cycles(bars), iter_cycles(scramble_after(bars, t, seed=9)), strict=True
    ):
        ra, rb = a.update(x), b.update(y)
        if int(x.ts[0]) <= t:
            assert np.array_equal(ra, rb, equal_nan=True)


def test_the_online_engine_refuses_a_cycle_from_the_past(demo: Bars) -> None:
    cycles = [c for _, c in iter_cycles(demo.between(None, int(demo.ts[0]) + 3 * 300_000))]
    eng = OnlineEngine()
    eng.update(cycles[0])
    eng.update(cycles[2])
    with pytest.raises(ValueError, match="not after"):
        eng.update(cycles[1])
