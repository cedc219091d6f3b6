import csv
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from decile.market.bars import Bars
from decile.market.loaders import (
    LoadError,
    LoadErrorCode,
    demo_data_path,
    iter_cycles,
    load,
    load_demo,
    read_bars,
    read_batches,
    stream_cycles,
    symbol_from_filename,
)
from decile.market.timeframes import to_ms
from decile.testing.probes import SHARED_DATA

SHARED = SHARED_DATA
BINANCE = SHARED / "binance-spot-5m-nfi"
FREQTRADE = SHARED / "freqtrade-testdata"
LEAN = SHARED / "quantconnect-lean-us-equity"
needs_shared = pytest.mark.skipif(
    not BINANCE.is_dir() or not FREQTRADE.is_dir() or not LEAN.is_dir(),
    reason="real-data copies under ../shared/data are not on this machine",
)

T0 = to_ms("2021-02-01")
M5 = 300_000
DEMO_PAIRS = 20
DEMO_CYCLES = 28 * 288


def frame(n: int = 4, pairs: tuple[str, ...] = ("BTC/USDT", "ETH/USDT")) -> pa.Table:
    """A small bar table laid out symbol by symbol, like the Binance copy."""
    rows = [(p, T0 + i * M5) for p in pairs for i in range(n)]
    k = len(rows)
    price = np.linspace(10, 20, k)
    return pa.table(
        {
            "pair": pa.array([p for p, _ in rows]).dictionary_encode(),
            "date": pa.array([t for _, t in rows], pa.timestamp("ms", tz="UTC")),
            "open": price,
            "high": price + 1,
            "low": price - 1,
            "close": price + 0.5,
            "volume": np.arange(k, dtype=np.float64),
        }
    )


def as_bars(table: pa.Table) -> Bars:
    return Bars.from_arrow(table.rename_columns(["symbol", "ts", *table.column_names[2:]]))


def refused(path: Path, **kw: object) -> LoadError:
    with pytest.raises(LoadError) as info:
        load(path, **kw)  # type: ignore[arg-type]
    return info.value


# -- the bundled demo file: always available ----------------------------------


def test_demo_file_is_bundled_small_and_documented() -> None:
    path = demo_data_path()
    assert path.name == "demo_binance_5m.parquet"
    assert path.stat().st_size < 5 * 1024 * 1024
    assert (path.parent / "README.md").is_file()


def test_demo_file_loads_twenty_pairs_over_four_weeks_in_event_time_order() -> None:
    loaded = load(demo_data_path())
    bars, report = loaded.bars, loaded.report
    assert {"BTC/USDT", "ETH/USDT"} <= set(bars.symbols)
    assert len(bars.symbols) == DEMO_PAIRS
    assert bars.is_sorted()
    assert bars.ts.min() == T0
    assert bars.ts.max() == to_ms("2021-03-01") - M5
    assert len(np.unique(bars.ts)) == DEMO_CYCLES - 15  # the 2021-02-11 outage
    assert report.rows == report.rows_read == len(bars) == DEMO_CYCLES * DEMO_PAIRS - 15 * 20
    assert report.unsorted_rows == report.duplicate_rows == 0
    assert not report.refused


def test_filters_keep_only_the_asked_symbols_and_window() -> None:
    bars = load_demo(symbols=["ETH/USDT", "BTC/USDT"], start="2021-02-02", end="2021-02-03")
    assert bars.symbols == ("BTC/USDT", "ETH/USDT")
    assert len(bars) == 2 * 288
    assert bars.ts.min() == to_ms("2021-02-02")
    assert bars.ts.max() == to_ms("2021-02-03") - M5


def test_iter_cycles_yields_one_cross_section_per_bar_time_oldest_first() -> None:
    bars = load_demo()
    cycles = list(iter_cycles(bars))
    assert len(cycles) == DEMO_CYCLES - 15
    times = [ts for ts, _ in cycles]
    assert times == sorted(times)
    assert sum(len(c) for _, c in cycles) == len(bars)
    for ts, cycle in cycles[:50]:
        assert set(cycle.ts.tolist()) == {ts}
        assert len(cycle) == DEMO_PAIRS
        assert cycle.is_sorted()


def test_iter_cycles_sorts_unsorted_bars_first() -> None:
    bars = as_bars(frame())  # symbol by symbol
    assert [ts for ts, _ in iter_cycles(bars)] == [T0 + i * M5 for i in range(4)]


def test_stream_cycles_matches_iter_cycles_with_bounded_batches() -> None:
    path = demo_data_path()
    streamed = list(stream_cycles(path, batch_rows=999, start="2021-02-10", end="2021-02-12"))
    expected = list(iter_cycles(load_demo(start="2021-02-10", end="2021-02-12")))
    assert [t for t, _ in streamed] == [t for t, _ in expected]
    assert all(a.equals(b) for (_, a), (_, b) in zip(streamed, expected, strict=True))


def test_read_batches_streams_chunks_no_bigger_than_asked() -> None:
    chunks = list(read_batches(demo_data_path(), batch_rows=10_000))
    assert max(len(c) for c in chunks) <= 10_000
    assert sum(len(c) for c in chunks) == len(load_demo())


# -- formats ---------------------------------------------------------------------


def test_reads_parquet_with_pair_and_date_columns(tmp_path: Path) -> None:
    path = tmp_path / "bars.parquet"
    pq.write_table(frame(), path)
    bars = read_bars(path)
    assert bars.symbols == ("BTC/USDT", "ETH/USDT")
    assert len(bars) == 8
    assert bars.is_sorted()


def test_reads_symbol_and_naive_time_columns_as_utc(tmp_path: Path) -> None:
    table = frame().rename_columns(["symbol", "time", "open", "high", "low", "close", "volume"])
    table = table.set_column(1, "time", table.column("time").cast(pa.timestamp("us")))
    pq.write_table(table, tmp_path / "eq.parquet")
    assert read_bars(tmp_path / "eq.parquet").ts.min() == T0


def test_reads_csv_with_a_header(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["pair", "date", "open", "high", "low", "close", "volume"])
        w.writerow(["ETH/BTC", "2021-02-01 00:05:00+00:00", 1, 2, 0.5, 1.5, 10])
        w.writerow(["ETH/BTC", "2021-02-01 00:00:00+00:00", 1, 2, 0.5, 1.5, 10])
    loaded = load(path)
    assert loaded.bars.ts.tolist() == [T0, T0 + M5]
    assert loaded.report.unsorted_rows == 1


def test_reads_freqtrade_feather_taking_the_pair_from_the_file_name(tmp_path: Path) -> None:
    table = frame(pairs=("X",)).drop_columns(["pair"])
    table = table.set_column(0, "date", table.column("date").cast(pa.timestamp("ns", tz="UTC")))
    feather.write_feather(table, tmp_path / "ETH_BTC-5m.feather")
    bars = read_bars(tmp_path / "ETH_BTC-5m.feather")
    assert bars.symbols == ("ETH/BTC",)
    assert bars.ts.tolist() == [T0 + i * M5 for i in range(4)]


@pytest.mark.parametrize(
    ("name", "symbol"),
    [
        ("ETH_BTC-5m.feather", "ETH/BTC"),
        ("UNITTEST_BTC-1m.feather", "UNITTEST/BTC"),
        ("XRP_USDT_USDT-5m-futures.feather", "XRP/USDT:USDT"),
        ("bars.parquet", None),
        ("XRP_ETH-trades.parquet", None),
    ],
)
def test_symbol_from_filename_follows_freqtrade_naming(name: str, symbol: str | None) -> None:
    assert symbol_from_filename(name) == symbol


def test_reads_a_directory_skipping_underscore_files_and_other_extensions(tmp_path: Path) -> None:
    pq.write_table(frame(pairs=("BTC/USDT",)), tmp_path / "a.parquet")
    pq.write_table(frame(pairs=("ETH/USDT",)), tmp_path / "b.parquet")
    (tmp_path / "_summary.csv").write_text("garbage\n")
    (tmp_path / "README.md").write_text("# hi\n")
    loaded = load(tmp_path)
    assert loaded.bars.symbols == ("BTC/USDT", "ETH/USDT")
    assert len(loaded.report.files) == 2
    assert loaded.bars.is_sorted()


def test_unsorted_rows_are_sorted_and_counted(tmp_path: Path) -> None:
    table = frame(n=6)
    shuffled = table.take(pa.array([0, 2, 1, 5, 4, 3, 6, 7, 8, 9, 11, 10]))
    pq.write_table(shuffled, tmp_path / "u.parquet")
    loaded = load(tmp_path / "u.parquet")
    assert loaded.report.unsorted_rows == 4  # rows older than their symbol's previous row
    assert loaded.bars.equals(as_bars(frame(n=6)).sort())


def test_symbol_by_symbol_layout_is_not_counted_as_unsorted(tmp_path: Path) -> None:
    pq.write_table(frame(), tmp_path / "s.parquet")
    assert load(tmp_path / "s.parquet").report.unsorted_rows == 0


def test_duplicate_rows_are_counted_and_kept_for_the_quality_check(tmp_path: Path) -> None:
    table = frame()
    pq.write_table(pa.concat_tables([table, table.slice(0, 2)]), tmp_path / "d.parquet")
    loaded = load(tmp_path / "d.parquet")
    assert loaded.report.duplicate_rows == 2
    assert len(loaded.bars) == 10


# -- malformed files are refused with a code ---------------------------------------


def test_missing_columns_are_refused_naming_them(tmp_path: Path) -> None:
    pq.write_table(frame().drop_columns(["volume", "low"]), tmp_path / "m.parquet")
    err = refused(tmp_path / "m.parquet")
    assert err.code is LoadErrorCode.MISSING_COLUMNS
    assert "low, volume" in err.detail
    assert err.path.endswith("m.parquet")


def test_a_file_without_symbol_column_or_freqtrade_name_is_refused(tmp_path: Path) -> None:
    pq.write_table(frame().drop_columns(["pair"]), tmp_path / "nosym.parquet")
    assert refused(tmp_path / "nosym.parquet").code is LoadErrorCode.MISSING_COLUMNS
    assert read_bars(tmp_path / "nosym.parquet", symbol="ABC/USDT").symbols == ("ABC/USDT",)


def test_text_in_a_price_column_is_refused_as_wrong_types(tmp_path: Path) -> None:
    table = frame()
    table = table.set_column(5, "close", pa.array([str(x) for x in table.column("close")]))
    pq.write_table(table, tmp_path / "w.parquet")
    err = refused(tmp_path / "w.parquet")
    assert err.code is LoadErrorCode.WRONG_TYPES
    assert "close" in err.detail


def test_a_csv_with_words_in_the_time_column_is_refused_as_wrong_types(tmp_path: Path) -> None:
    path = tmp_path / "w.csv"
    path.write_text("pair,date,open,high,low,close,volume\nA/B,yesterday,1,1,1,1,1\n")
    assert refused(path).code is LoadErrorCode.WRONG_TYPES


def test_a_zero_byte_file_is_refused_as_empty(tmp_path: Path) -> None:
    for name in ("e.parquet", "e.csv", "E_B-5m.feather"):
        (tmp_path / name).write_bytes(b"")
        assert refused(tmp_path / name).code is LoadErrorCode.EMPTY_FILE


def test_a_file_with_columns_but_no_rows_is_refused_as_empty(tmp_path: Path) -> None:
    pq.write_table(frame().slice(0, 0), tmp_path / "e.parquet")
    (tmp_path / "h.csv").write_text("pair,date,open,high,low,close,volume\n")
    assert refused(tmp_path / "e.parquet").code is LoadErrorCode.EMPTY_FILE
    assert refused(tmp_path / "h.csv").code is LoadErrorCode.EMPTY_FILE


def test_garbage_bytes_are_refused_as_unreadable_without_a_pyarrow_traceback(
    tmp_path: Path,
) -> None:
    path = tmp_path / "junk.parquet"
    path.write_bytes(b"this is not parquet at all" * 10)
    err = refused(path)
    assert err.code is LoadErrorCode.UNREADABLE
    assert str(err).startswith("UNREADABLE: ")
    assert "\n" not in str(err)
    assert err.to_dict()["code"] == "UNREADABLE"


def test_a_null_symbol_is_refused(tmp_path: Path) -> None:
    table = frame()
    table = table.set_column(0, "pair", pa.array(["A/B", None] * 4))
    pq.write_table(table, tmp_path / "n.parquet")
    assert refused(tmp_path / "n.parquet").code is LoadErrorCode.NULL_KEYS


def test_missing_paths_and_unknown_extensions_are_refused(tmp_path: Path) -> None:
    assert refused(tmp_path / "nope.parquet").code is LoadErrorCode.NOT_FOUND
    (tmp_path / "bars.xlsx").write_bytes(b"x")
    assert refused(tmp_path / "bars.xlsx").code is LoadErrorCode.UNSUPPORTED_FORMAT
    (tmp_path / "bars.xlsx").unlink()
    assert refused(tmp_path).code is LoadErrorCode.NOT_FOUND


def test_a_bad_file_in_a_directory_stops_the_load_unless_skipped(tmp_path: Path) -> None:
    pq.write_table(frame(), tmp_path / "good.parquet")
    pq.write_table(frame().drop_columns(["open"]), tmp_path / "bad.parquet")
    assert refused(tmp_path).code is LoadErrorCode.MISSING_COLUMNS
    loaded = load(tmp_path, on_error="skip")
    assert len(loaded.bars) == 8
    assert [e.code for e in loaded.report.refused] == [LoadErrorCode.MISSING_COLUMNS]
    assert loaded.report.files == (str(tmp_path / "good.parquet"),)


def test_stream_cycles_refuses_a_file_not_in_event_time_order(tmp_path: Path) -> None:
    pq.write_table(frame(n=50), tmp_path / "bysym.parquet")  # symbol by symbol
    with pytest.raises(LoadError) as info:
        list(stream_cycles(tmp_path / "bysym.parquet", batch_rows=10))
    assert info.value.code is LoadErrorCode.UNSORTED


# -- the full real-data copies, when present -----------------------------------------


@needs_shared
def test_full_binance_copy_loads_every_row_of_110_pairs() -> None:
    loaded = load(BINANCE)
    assert loaded.report.rows == 3_519_702
    assert len(loaded.bars.symbols) == 110
    assert loaded.bars.is_sorted()
    assert loaded.report.unsorted_rows == loaded.report.duplicate_rows == 0


@needs_shared
def test_freqtrade_test_data_directory_loads_5m_feather_files_and_skips_trades() -> None:
    bars = read_bars(FREQTRADE, pattern="*-5m.feather")
    assert "ETH/BTC" in bars.symbols
    assert "XRP/ETH" in bars.symbols
    assert bars.is_sorted()
    loaded = load(FREQTRADE, pattern="*.parquet", on_error="skip")
    assert [e.code for e in loaded.report.refused] == [LoadErrorCode.MISSING_COLUMNS]


@needs_shared
def test_lean_hourly_new_york_times_become_utc() -> None:
    bars = read_bars(LEAN / "us_equity_hour.parquet", symbols=["AAPL"], end="1998-01-03")
    assert bars.ts.min() == to_ms("1998-01-02T14:00:00Z")  # 09:00 in New York (EST)
