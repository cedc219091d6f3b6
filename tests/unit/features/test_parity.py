"""Online == offline for every feature (tolerance in features_support: rtol 1e-9, atol 1e-12).

Same rows, same NaN pattern (warm-up included), values within tolerance. Checked
on the bundled sample (always), through gaps and listings, and on real pairs.
"""

import numpy as np
import pytest
from features_support import mismatches, online_rows, real_bars

from decile.features import SCHEMA, OfflineFeatures, compute_offline
from decile.market.bars import Bars
from decile.market.loaders import load_demo

M5 = 300_000


def assert_parity(online: OfflineFeatures, offline: OfflineFeatures) -> None:
    assert np.array_equal(online.code, offline.code)
    assert np.array_equal(online.ts, offline.ts)
    bad = mismatches(online.values, offline.values)
    broken = {n: int(b) for n, b in zip(SCHEMA.names, bad, strict=True) if b}
    assert not broken, f"online != offline: {broken}"
    finite = np.isfinite(offline.values).mean(axis=0)
    assert (finite > 0).all(), "a feature never had a value: parity proved nothing for it"


def test_online_equals_offline_for_every_feature_on_the_bundled_sample(
    demo_online: OfflineFeatures, demo_offline: OfflineFeatures
) -> None:
    assert_parity(demo_online, demo_offline)


def test_parity_holds_through_gaps_listings_delistings_and_a_missing_reference() -> None:
    bars = load_demo(end="2021-02-08")
    t0 = int(bars.ts[0])
    rng = np.random.default_rng(1)
    sym, ts = bars.symbol, bars.ts
    keep = rng.random(len(bars)) > 0.05  # 5% of bars missing at random
    keep &= ~((sym == "BTC/USDT") & (ts > t0 + 500 * M5) & (ts < t0 + 700 * M5))  # outage
    keep &= ~((sym == "SOL/USDT") & (ts < t0 + 900 * M5))  # listed late
    keep &= ~((sym == "ETH/USDT") & (ts > t0 + 1_500 * M5))  # delisted
    gappy = bars.take(keep)
    assert_parity(online_rows(gappy), compute_offline(gappy).sorted())


def test_parity_on_a_multi_day_replay_of_110_real_pairs() -> None:
    bars = real_bars(start="2021-01-10", end="2021-01-16")
    assert len(bars.present()) >= 50
    assert_parity(online_rows(bars), compute_offline(bars).sorted())


@pytest.mark.slow
def test_parity_over_the_whole_110_pair_dataset() -> None:
    bars = real_bars()
    assert_parity(online_rows(bars), compute_offline(bars).sorted())


def test_the_engines_agree_whatever_the_offline_chunking() -> None:
    bars: Bars = load_demo(end="2021-02-04")
    whole = compute_offline(bars, chunk_cells=10**9, threads=1).sorted()
    small = compute_offline(bars, chunk_cells=3_000, threads=2).sorted()
    assert not mismatches(whole.values, small.values).any()
