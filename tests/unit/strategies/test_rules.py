import numpy as np
import pytest

from decile.features import SCHEMA, compute_offline
from decile.market.loaders import load_demo
from decile.strategies import STRATEGIES, STRATEGY_IDS, propose


@pytest.fixture(scope="module")
def demo():  # type: ignore[no-untyped-def]
    return compute_offline(load_demo()).sorted()


def _row(**values: float) -> np.ndarray:
    x = np.full((1, len(SCHEMA.names)), np.nan)
    for k, v in values.items():
        x[0, SCHEMA.names.index(k)] = v
    return x


def test_every_rule_reads_only_features_of_the_schema() -> None:
    for strat in STRATEGIES:
        assert set(strat.needs) <= set(SCHEMA.names), strat.id
    assert len(set(STRATEGY_IDS)) == len(STRATEGY_IDS)


def test_every_strategy_proposes_both_sides_on_the_bundled_sample(demo) -> None:  # type: ignore[no-untyped-def]
    props = propose(demo.values, demo.names)
    for k, sid in enumerate(props.strategy_ids):
        sides = props.side[props.strategy == k]
        assert (sides == 1).any(), sid
        assert (sides == -1).any(), sid
    assert set(np.unique(props.side)) == {-1, 1}


def test_one_cross_section_gives_the_same_proposals_as_the_whole_history(demo) -> None:  # type: ignore[no-untyped-def]
    offline = propose(demo.values, demo.names)
    for t in np.unique(demo.ts)[[500, 3000, 7000]]:
        rows = np.flatnonzero(demo.ts == t)
        online = propose(demo.values[rows], demo.names)  # one row per symbol
        expect = np.isin(offline.row, rows)
        got = sorted(zip(rows[online.row], online.strategy, online.side, strict=True))
        want = sorted(
            zip(offline.row[expect], offline.strategy[expect], offline.side[expect], strict=True)
        )
        assert got == want


def test_warm_up_rows_full_of_nan_never_propose() -> None:
    props = propose(np.full((5, len(SCHEMA.names)), np.nan), SCHEMA.names)
    assert len(props) == 0


def test_bollinger_reversion_goes_long_below_the_band_and_short_above() -> None:
    x = np.vstack(
        [
            _row(bb_pctb_20=-0.1, rsi_14=25.0),
            _row(bb_pctb_20=1.2, rsi_14=75.0),
            _row(bb_pctb_20=-0.1, rsi_14=45.0),  # no RSI confirmation
        ]
    )
    props = propose(x, SCHEMA.names)
    k = props.strategy_ids.index("bb_reversion")
    mine = props.strategy == k
    assert props.row[mine].tolist() == [0, 1]
    assert props.side[mine].tolist() == [1, -1]


def test_a_missing_input_feature_is_named() -> None:
    names = [n for n in SCHEMA.names if n != "rsi_14"]
    with pytest.raises(KeyError, match="rsi_14"):
        propose(np.zeros((1, len(names))), names)
