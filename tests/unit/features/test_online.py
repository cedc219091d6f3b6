import io

import numpy as np
import pytest
from features_support import synthetic

from decile.features import SCHEMA, FeatureSchema, OnlineEngine
from decile.features.definitions import define
from decile.features.schema import SPECS
from decile.market.bars import Bars
from decile.market.loaders import iter_cycles

M5 = 300_000


@pytest.fixture(scope="module")
def cycles() -> list[Bars]:
    return [c for _, c in iter_cycles(synthetic(n_symbols=8, n_bars=700, seed=2))]


def run(cycles: list[Bars], engine: OnlineEngine | None = None) -> list[np.ndarray]:
    eng = engine or OnlineEngine()
    return [eng.update(c) for c in cycles]


def test_a_cycle_gives_one_row_per_symbol_in_the_cycles_row_order(cycles: list[Bars]) -> None:
    eng = OnlineEngine()
    run(cycles[:-1], eng)
    last = cycles[-1]
    rows = eng.update(last.take(np.arange(len(last))[::-1]))  # rows in reverse symbol order
    ref = OnlineEngine()
    run(cycles[:-1], ref)
    assert np.array_equal(rows, ref.update(last)[::-1], equal_nan=True)
    assert rows.shape == (len(last), len(SCHEMA))


def state_of(engine: OnlineEngine, symbol: str) -> dict[str, np.ndarray]:
    """Every state array's entries for one symbol, from a snapshot."""
    slot = engine.symbols.index(symbol)
    with np.load(io.BytesIO(engine.snapshot())) as npz:
        return {k: npz[k][..., slot].copy() for k in npz.files if k != "meta"}


def test_a_symbol_missing_from_a_cycle_keeps_its_state_and_gets_a_nan_row(
    cycles: list[Bars],
) -> None:
    eng = OnlineEngine()
    run(cycles[:400], eng)
    gone = cycles[400].symbols[3]
    before = state_of(eng, gone)
    cycle = cycles[400].select(s for s in cycles[400].symbols if s != gone)
    out = eng.update(cycle, symbols=cycles[400].symbols)
    assert np.isnan(out[3]).all()
    assert np.isfinite(out[[0, 1, 2, 4]]).mean() > 0.9
    after = state_of(eng, gone)
    assert before.keys() == after.keys()
    for k in before:
        assert np.array_equal(before[k], after[k], equal_nan=True), k
    assert eng.bars_seen(gone) == 400


def test_a_symbol_listed_mid_stream_warms_up_alone_and_changes_no_other_row(
    cycles: list[Bars],
) -> None:
    late = cycles[0].symbols[5]
    without = [c.select(s for s in c.symbols if s != late) for c in cycles]
    with_late = [c if i >= 300 else without[i] for i, c in enumerate(cycles)]
    a, b = run(without), run(with_late)
    for i in range(300, len(cycles)):
        others = [j for j, s in enumerate(cycles[i].symbols) if s != late]
        assert np.array_equal(b[i][others], a[i], equal_nan=True)
    warm = SCHEMA.warmups
    for k, i in enumerate(range(300, 320)):
        row = b[i][cycles[i].symbols.index(late)]
        assert np.isnan(row[warm > k]).all()


def test_snapshot_and_restore_continue_bit_for_bit(cycles: list[Bars]) -> None:
    eng = OnlineEngine(capacity=2)  # also grows on the way
    run(cycles[:350], eng)
    restored = OnlineEngine.restore(eng.snapshot())
    assert restored.symbols == eng.symbols
    assert restored.last_ts == eng.last_ts
    for c in cycles[350:]:
        assert np.array_equal(eng.update(c), restored.update(c), equal_nan=True)


def test_replaying_the_bars_rebuilds_the_same_state(cycles: list[Bars]) -> None:
    eng = OnlineEngine()
    run(cycles[:500], eng)
    rebuilt = OnlineEngine()
    rebuilt.replay(Bars.concat(cycles[:500]))
    for c in cycles[500:520]:
        assert np.array_equal(eng.update(c), rebuilt.update(c), equal_nan=True)


def test_a_snapshot_of_another_feature_schema_is_refused(cycles: list[Bars]) -> None:
    eng = OnlineEngine()
    run(cycles[:20], eng)
    other = FeatureSchema.build(SPECS, define, code_version="f0")
    with pytest.raises(ValueError, match="feature schema"):
        OnlineEngine.restore(eng.snapshot(), other)


def test_a_cycle_must_hold_one_time_and_one_bar_per_symbol(cycles: list[Bars]) -> None:
    eng = OnlineEngine()
    with pytest.raises(ValueError, match="one ts"):
        eng.update(Bars.concat(cycles[:2]))
    twice = Bars.concat([cycles[0].select(["BTC/USDT"])] * 2)
    with pytest.raises(ValueError, match="one bar per symbol"):
        eng.update(twice)


def test_degenerate_bars_give_nan_never_inf_or_zero_filled(cycles: list[Bars]) -> None:
    eng = OnlineEngine()
    run(cycles[:400], eng)
    c = cycles[400]
    price = np.full(len(c), 10.0)
    flat = Bars(c.symbols, c.code, c.ts, price, price, price, price, np.zeros(len(c)))
    out = np.vstack(
        [
            eng.update(flat),
            *(
                eng.update(
                    Bars(
                        c.symbols,
                        c.code,
                        c.ts + (i + 1) * M5,
                        price,
                        price,
                        price,
                        price,
                        np.zeros(len(c)),
                    )
                )
                for i in range(30)
            ),
        ]
    )
    assert not np.isinf(out).any()
    col = out[:, SCHEMA.index("vol_ratio_20")]
    assert np.isnan(col[-1]).all()  # 20 bars without volume: a ratio to 0 is undefined


def test_every_state_array_is_sized_by_symbols_seen_not_by_history(cycles: list[Bars]) -> None:
    eng = OnlineEngine()
    run(cycles[:50], eng)
    small = len(eng.snapshot())
    run(cycles[50:400], eng)
    assert len(eng.snapshot()) == small
