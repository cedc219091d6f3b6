import numpy as np
import pyarrow as pa
import pytest

from decile.market.bars import ARROW_SCHEMA, Bars

T0 = 1_612_137_600_000  # 2021-02-01T00:00Z
M5 = 300_000


def make(rows: list[tuple[str, int, float, float, float, float, float]]) -> Bars:
    sym, ts, o, h, lo, c, v = zip(*rows, strict=True)
    return Bars.from_arrays(list(sym), ts, o, h, lo, c, v)


def sample() -> Bars:
    return make(
        [
            ("ETH/USDT", T0 + M5, 2.0, 2.5, 1.5, 2.2, 20.0),
            ("BTC/USDT", T0, 10.0, 11.0, 9.0, 10.5, 1.0),
            ("ETH/USDT", T0, 1.9, 2.1, 1.8, 2.0, 30.0),
            ("BTC/USDT", T0 + M5, 10.5, 12.0, 10.0, 11.0, 2.0),
        ]
    )


def test_symbols_are_a_sorted_universe_so_code_order_is_name_order() -> None:
    bars = sample()
    assert bars.symbols == ("BTC/USDT", "ETH/USDT")
    assert bars.code.tolist() == [1, 0, 1, 0]
    assert bars.symbol.tolist() == ["ETH/USDT", "BTC/USDT", "ETH/USDT", "BTC/USDT"]
    assert len(bars) == 4


def test_columns_have_the_documented_dtypes_and_cannot_be_written() -> None:
    bars = sample()
    assert bars.code.dtype == np.int32
    assert bars.ts.dtype == np.int64
    assert all(getattr(bars, f).dtype == np.float64 for f in ("open", "high", "volume"))
    with pytest.raises(ValueError, match="read-only"):
        bars.close[0] = 0.0


def test_refuses_columns_of_different_lengths() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        Bars(("A",), [0, 0], [T0, T0 + M5], [1.0], [1.0], [1.0], [1.0], [1.0])  # type: ignore[arg-type]


def test_refuses_an_unsorted_universe_or_a_code_outside_it() -> None:
    one = np.ones(1)
    with pytest.raises(ValueError, match="sorted and unique"):
        Bars(("B", "A"), np.zeros(1, np.int32), np.zeros(1, np.int64), one, one, one, one, one)
    with pytest.raises(ValueError, match="outside"):
        Bars(("A",), np.ones(1, np.int32), np.zeros(1, np.int64), one, one, one, one, one)


def test_slice_is_a_zero_copy_view_of_the_parent() -> None:
    bars = sample()
    part = bars.slice(1, 3)
    assert len(part) == 2
    assert np.shares_memory(part.close, bars.close)
    assert part.symbols is bars.symbols


def test_take_accepts_a_mask_or_positions_and_refuses_a_mask_of_the_wrong_length() -> None:
    bars = sample()
    assert bars.take(bars.volume > 5).volume.tolist() == [20.0, 30.0]
    assert bars.take([3, 0]).ts.tolist() == [T0 + M5, T0 + M5]
    with pytest.raises(ValueError, match="mask has 2 rows"):
        bars.take(np.array([True, False]))


def test_sort_gives_event_time_order_across_symbols() -> None:
    bars = sample()
    assert not bars.is_sorted()
    ordered = bars.sort()
    assert ordered.is_sorted()
    assert list(zip(ordered.ts.tolist(), ordered.symbol.tolist(), strict=True)) == [
        (T0, "BTC/USDT"),
        (T0, "ETH/USDT"),
        (T0 + M5, "BTC/USDT"),
        (T0 + M5, "ETH/USDT"),
    ]
    assert ordered.sort() is ordered


def test_concat_remaps_codes_onto_the_union_of_universes() -> None:
    a = make([("ETH/USDT", T0, 1, 1, 1, 1, 1)])
    b = make([("ADA/USDT", T0, 2, 2, 2, 2, 2), ("ETH/USDT", T0 + M5, 3, 3, 3, 3, 3)])
    both = Bars.concat([a, b])
    assert both.symbols == ("ADA/USDT", "ETH/USDT")
    assert both.symbol.tolist() == ["ETH/USDT", "ADA/USDT", "ETH/USDT"]
    assert both.close.tolist() == [1.0, 2.0, 3.0]
    assert len(Bars.concat([])) == 0


def test_select_between_and_compact_filter_rows_and_universe() -> None:
    bars = sample()
    eth = bars.select(["ETH/USDT", "NOPE/USDT"])
    assert set(eth.symbol.tolist()) == {"ETH/USDT"}
    assert eth.compact().symbols == ("ETH/USDT",)
    assert eth.compact().symbol.tolist() == eth.symbol.tolist()
    assert bars.between(T0 + M5).ts.tolist() == [T0 + M5, T0 + M5]
    assert bars.between(None, T0 + M5).ts.tolist() == [T0, T0]
    assert bars.present() == ("BTC/USDT", "ETH/USDT")


def test_arrow_round_trip_keeps_every_value_including_nan() -> None:
    bars = Bars.concat([sample(), make([("XRP/USDT", T0, float("nan"), 1, 1, 1, 0)])])
    table = bars.to_arrow()
    assert table.schema.equals(ARROW_SCHEMA)
    assert table.column("ts").type == pa.timestamp("ms", tz="UTC")
    back = Bars.from_arrow(table)
    assert back.equals(bars)


def test_from_arrow_reads_other_time_units_and_zones_as_utc_milliseconds() -> None:
    table = pa.table(
        {
            "symbol": pa.array(["AAPL", "AAPL"]),
            "ts": pa.array(
                [T0 * 1_000, (T0 + M5) * 1_000], pa.timestamp("us", tz="America/New_York")
            ),
            "open": pa.array([1, 2], pa.int64()),
            "high": [1.0, 2.0],
            "low": [1.0, 2.0],
            "close": [1.0, None],
            "volume": pa.array([10, 20], pa.int64()),
        }
    )
    bars = Bars.from_arrow(table)
    assert bars.ts.tolist() == [T0, T0 + M5]
    assert bars.open.tolist() == [1.0, 2.0]
    assert np.isnan(bars.close[1])


def test_from_arrow_refuses_text_in_a_price_column() -> None:
    table = sample().to_arrow().set_column(5, "close", pa.array(["a", "b", "c", "d"]))
    with pytest.raises(TypeError, match="close: expected numbers"):
        Bars.from_arrow(table)


def test_equals_compares_names_not_codes() -> None:
    bars = sample()
    wider = bars.with_symbols(("ADA/USDT", "BTC/USDT", "ETH/USDT"))
    assert wider.code.tolist() != bars.code.tolist()
    assert wider.equals(bars)
    assert not bars.equals(bars.slice(1))


def test_a_cross_section_round_trips_through_names_and_an_ohlcv_matrix() -> None:
    bars = sample().sort()
    cycle = bars.slice(0, 2)
    assert cycle.row_names() is cycle.symbols  # whole universe in order: no string work
    assert cycle.ohlcv().shape == (2, 5)
    back = Bars.from_ohlcv(cycle.row_names(), T0, cycle.ohlcv())
    assert back.equals(cycle)
    partial = bars.take([3, 1])
    assert partial.row_names() == ("ETH/USDT", "ETH/USDT")
    assert Bars.from_ohlcv(partial.row_names(), partial.ts, partial.ohlcv()).equals(partial)
