import numpy as np

from decile.features import SCHEMA, compute_offline
from decile.market.loaders import load_demo
from decile.training.dataset import EXTRA_FEATURES, Dataset, from_features


def test_dataset_columns_are_the_schema_in_order_then_side_and_strategy(
    demo_dataset: Dataset,
) -> None:
    ds = demo_dataset
    assert ds.feature_names == tuple(SCHEMA.names) + EXTRA_FEATURES
    assert ds.x.shape == (len(ds), len(SCHEMA.names) + 2)
    np.testing.assert_array_equal(ds.x[:, -2], ds.side)
    np.testing.assert_array_equal(ds.x[:, -1], ds.strategy)
    assert set(np.unique(ds.win)) == {0, 1}
    assert np.isfinite(ds.realised_r).all()
    assert np.isfinite(ds.x).mean() > 0.999  # warm-up rows are not in the dataset
    assert (ds.mae_atr >= 0).all()


def test_every_proposal_is_kept_labelled_or_counted(demo_dataset: Dataset) -> None:
    c = demo_dataset.counts
    assert c["proposals"] == c["warmup"] + c["duplicates"] + c["unlabelled"] + c["rows"]
    assert c["warmup"] > 0
    assert c["rows"] == len(demo_dataset) > 5_000
    assert c["unlabelled"] > 0  # proposals in the last H bars cannot be labelled


def test_duplicate_symbol_bar_strategy_rows_are_removed_and_counted() -> None:
    feats = compute_offline(load_demo(symbols=["BTC/USDT", "ETH/USDT"])).sorted()
    bars = load_demo(symbols=["BTC/USDT", "ETH/USDT"])
    src = feats.source_rows
    hi, lo, cl = bars.high[src], bars.low[src], bars.close[src]
    clean = from_features(feats, hi, lo, cl, warmup=0)
    rep = np.repeat(np.arange(len(feats)), 2)  # every bar delivered twice
    doubled = type(feats)(
        feats.symbols,
        feats.code[rep],
        feats.ts[rep],
        feats.values[rep],
        feats.names,
        feats.schema_version,
        feats.source_rows[rep],
    )
    dup = from_features(doubled, hi[rep], lo[rep], cl[rep], warmup=0)
    assert dup.counts["duplicates"] == clean.counts["proposals"]
    assert dup.counts["proposals"] == 2 * clean.counts["proposals"]
    keys = np.stack([dup.code, dup.ts, dup.strategy], axis=1)
    assert len(np.unique(keys, axis=0)) == len(dup)
