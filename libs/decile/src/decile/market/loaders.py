"""Read bar files (Parquet, CSV, freqtrade feather, or a directory of them) into :class:`Bars`.

Everything returned is in event-time order, ``(ts, symbol)``, the order a live
feed would deliver it, so a replay and a live run see the same sequence.
Files are read batch by batch and filtered as they stream, so selecting a few
symbols or a window out of a big file keeps only those rows in memory.

A file that cannot be turned into bars is refused with a :class:`LoadError`
carrying a stable ``code``, the path and a one-line detail, never a raw
pyarrow traceback: the caller decides whether to stop or quarantine the file.
Values are not judged here (NaN, negative prices...): that is
:mod:`decile.market.quality`'s job, one rule set for files and live feeds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.feather as pfeather
import pyarrow.parquet as pq

from decile.market.bars import VALUE_FIELDS, Bars, arrow_float, arrow_ms, arrow_symbols
from decile.market.timeframes import to_ms

__all__ = [
    "DEMO_FILE",
    "LoadError",
    "LoadErrorCode",
    "LoadReport",
    "Loaded",
    "demo_data_path",
    "iter_cycles",
    "load",
    "load_demo",
    "read_bars",
    "read_batches",
    "stream_cycles",
    "symbol_from_filename",
]

DEMO_FILE: Final = "demo_binance_5m.parquet"
SYMBOL_COLUMNS: Final = ("symbol", "pair")
TIME_COLUMNS: Final = ("ts", "date", "time", "timestamp")
DEFAULT_BATCH_ROWS: Final = 1 << 20
_FORMATS: Final = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".feather": "feather",
    ".arrow": "feather",
    ".ipc": "feather",
}
# freqtrade: "<BASE>_<QUOTE>[_<SETTLE>]-<timeframe>[-<candle type>].<ext>"
_FREQTRADE_NAME: Final = re.compile(
    r"^(?P<pair>[A-Za-z0-9]+(?:_[A-Za-z0-9]+){1,2})-(?P<tf>\d+[smhdwM])(?:-[a-z_]+)?$"
)

When = int | float | str | datetime | date | np.datetime64


class LoadErrorCode(StrEnum):
    """Why a file was refused; stable strings for logs, metrics and quarantine."""

    NOT_FOUND = "NOT_FOUND"
    UNSUPPORTED_FORMAT = "UNSUPPORTED_FORMAT"
    UNREADABLE = "UNREADABLE"
    EMPTY_FILE = "EMPTY_FILE"
    MISSING_COLUMNS = "MISSING_COLUMNS"
    WRONG_TYPES = "WRONG_TYPES"
    NULL_KEYS = "NULL_KEYS"
    UNSORTED = "UNSORTED"


class LoadError(Exception):
    """A file refused as bars: ``code`` (a :class:`LoadErrorCode`), ``path``, ``detail``."""

    def __init__(self, code: LoadErrorCode, path: str | Path, detail: str) -> None:
        self.code = LoadErrorCode(code)
        self.path = str(path)
        self.detail = detail
        super().__init__(f"{self.code}: {self.path}: {detail}")

    def to_dict(self) -> dict[str, str]:
        """Plain fields for a log line or a quarantine event."""
        return {"code": str(self.code), "path": self.path, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What a load saw, so surprises in the source are logged rather than silently fixed.

    ``unsorted_rows`` counts rows whose ``ts`` is older than the previous row
    of the same symbol in the same file (they were sorted; a file laid out
    symbol by symbol is *not* unsorted). ``duplicate_rows`` counts rows
    repeating an earlier ``(symbol, ts)``; they are kept for the quality check
    to reject. ``refused`` lists files skipped with ``on_error="skip"``.
    """

    files: tuple[str, ...]
    rows_read: int
    rows: int
    unsorted_rows: int
    duplicate_rows: int
    refused: tuple[LoadError, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Loaded:
    """Bars in ``(ts, symbol)`` order and the :class:`LoadReport` of how they were read."""

    bars: Bars
    report: LoadReport


def symbol_from_filename(path: str | Path) -> str | None:
    """freqtrade's pair for a file name: ``ETH_BTC-5m.feather`` -> ``ETH/BTC``.

    A three-part name is a futures pair: ``XRP_USDT_USDT-5m-futures`` ->
    ``XRP/USDT:USDT`` (freqtrade's ``BASE/QUOTE:SETTLE``). None when the name
    does not follow the convention.
    """
    stem = Path(path).name.split(".")[0]
    m = _FREQTRADE_NAME.match(stem)
    if m is None:
        return None
    parts = m["pair"].split("_")
    pair = f"{parts[0]}/{parts[1]}"
    return pair if len(parts) == 2 else f"{pair}:{parts[2]}"


def demo_data_path() -> Path:
    """The bundled demo file: 20 Binance USDT pairs, 5m, February 2021 (see data/README.md)."""
    path = Path(str(resources.files(__package__ or "decile.market") / "data" / DEMO_FILE))
    if not path.is_file():
        raise FileNotFoundError(f"demo data missing at {path}; run tools/make_demo_data.py")
    return path


def load_demo(**filters: Any) -> Bars:
    """The bundled demo bars, optionally filtered like :func:`read_bars`."""
    return read_bars(demo_data_path(), **filters)


def read_bars(
    path: str | Path,
    *,
    start: When | None = None,
    end: When | None = None,
    symbols: Iterable[str] | None = None,
    symbol: str | None = None,
    pattern: str = "*",
    on_error: Literal["raise", "skip"] = "raise",
) -> Bars:
    """:func:`load` without the report."""
    return load(
        path,
        start=start,
        end=end,
        symbols=symbols,
        symbol=symbol,
        pattern=pattern,
        on_error=on_error,
    ).bars


def load(
    path: str | Path,
    *,
    start: When | None = None,
    end: When | None = None,
    symbols: Iterable[str] | None = None,
    symbol: str | None = None,
    pattern: str = "*",
    on_error: Literal["raise", "skip"] = "raise",
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> Loaded:
    """Bars from a file or a directory of files, sorted ``(ts, symbol)``, with a report.

    ``start`` (inclusive) and ``end`` (exclusive) bound the bar OPEN time;
    ``symbols`` keeps only those names. A file without a symbol column takes
    ``symbol`` or, failing that, the pair in its freqtrade file name. A
    directory is read non-recursively through ``pattern`` (``"**/*.feather"``
    recurses), skipping names starting with ``_`` or ``.`` and unknown
    extensions; with ``on_error="skip"`` a refused file is listed in the report
    instead of stopping the load. Raises :class:`LoadError`.
    """
    files = _resolve(Path(path), pattern)
    wanted = None if symbols is None else frozenset(symbols)
    lo = None if start is None else to_ms(start)
    hi = None if end is None else to_ms(end)
    parts: list[Bars] = []
    refused: list[LoadError] = []
    rows_read = unsorted = 0
    for file in files:
        try:
            counter = _RowCounter()
            chunks = list(_file_batches(file, lo, hi, wanted, symbol, batch_rows, counter))
        except LoadError as err:
            if on_error == "raise":
                raise
            refused.append(err)
            continue
        rows_read += counter.rows
        if chunks:
            file_bars = Bars.concat(chunks)
            unsorted += _count_unsorted(file_bars)
            parts.append(file_bars)
    bars = Bars.concat(parts).sort() if parts else Bars.empty()
    if wanted is not None:
        bars = bars.compact()  # the universe is what was asked for and found, not the file's
    report = LoadReport(
        files=tuple(str(f) for f in files if all(r.path != str(f) for r in refused)),
        rows_read=rows_read,
        rows=len(bars),
        unsorted_rows=unsorted,
        duplicate_rows=_count_duplicates(bars),
        refused=tuple(refused),
    )
    return Loaded(bars, report)


def read_batches(
    path: str | Path,
    *,
    start: When | None = None,
    end: When | None = None,
    symbols: Iterable[str] | None = None,
    symbol: str | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> Iterator[Bars]:
    """One file as a stream of filtered :class:`Bars` chunks, in file order (not sorted).

    Memory stays bounded by ``batch_rows`` whatever the file size. Rows keep
    the file's order: use :func:`stream_cycles` for an event-ordered replay.
    """
    wanted = None if symbols is None else frozenset(symbols)
    lo = None if start is None else to_ms(start)
    hi = None if end is None else to_ms(end)
    yield from _file_batches(Path(path), lo, hi, wanted, symbol, batch_rows, _RowCounter())


def iter_cycles(bars: Bars) -> Iterator[tuple[int, Bars]]:
    """One cross-section per bar time, ``(ts, bars at ts)``, oldest first.

    The cut points come from one vectorised pass over ``ts``; each cycle is a
    zero-copy slice. Unsorted input is sorted first (a copy).
    """
    bars = bars.sort()
    ts = bars.ts
    if not len(ts):
        return
    starts = np.flatnonzero(np.r_[True, ts[1:] != ts[:-1]])
    stops = np.r_[starts[1:], len(ts)]
    for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
        yield int(ts[a]), bars.slice(a, b)


def stream_cycles(
    path: str | Path,
    *,
    start: When | None = None,
    end: When | None = None,
    symbols: Iterable[str] | None = None,
    symbol: str | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> Iterator[tuple[int, Bars]]:
    """Cross-sections of a big event-ordered file with bounded memory.

    Rows inside a batch may be in any order; a batch holding a bar older than
    a cycle already yielded means the file is not in event-time order and
    raises ``LoadError(UNSORTED)`` (use :func:`load`, which sorts in memory).
    """
    carry: Bars | None = None
    last_yielded: int | None = None
    for chunk in read_batches(
        path, start=start, end=end, symbols=symbols, symbol=symbol, batch_rows=batch_rows
    ):
        if not len(chunk):
            continue
        if last_yielded is not None and int(chunk.ts.min()) <= last_yielded:
            raise LoadError(
                LoadErrorCode.UNSORTED,
                path,
                f"bar at ts={int(chunk.ts.min())} after cycle ts={last_yielded} "
                "was yielded; the file is not in event-time order",
            )
        merged = (Bars.concat([carry, chunk]) if carry is not None else chunk).sort()
        last_ts = int(merged.ts[-1])
        cut = int(np.searchsorted(merged.ts, last_ts, side="left"))
        for ts, cycle in iter_cycles(merged.slice(0, cut)):
            last_yielded = ts
            yield ts, cycle
        carry = merged.slice(cut)  # the newest cycle may continue in the next batch
    if carry is not None and len(carry):
        yield from iter_cycles(carry)


# -- internals -----------------------------------------------------------------


@dataclass(slots=True)
class _RowCounter:
    rows: int = 0


def _resolve(path: Path, pattern: str) -> list[Path]:
    if path.is_dir():
        files = sorted(
            p
            for p in path.glob(pattern)
            if p.is_file() and not p.name.startswith(("_", ".")) and _format(p) is not None
        )
        if not files:
            raise LoadError(LoadErrorCode.NOT_FOUND, path, f"no bar files matching {pattern!r}")
        return files
    if not path.exists():
        raise LoadError(LoadErrorCode.NOT_FOUND, path, "no such file or directory")
    return [path]


def _format(path: Path) -> str | None:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".bz2", ".zst", ".lz4"):
        suffixes = suffixes[:-1]  # compressed CSV: the stream is decompressed transparently
        return "csv" if suffixes and suffixes[-1] == ".csv" else None
    return _FORMATS.get(suffixes[-1]) if suffixes else None


def _file_batches(
    path: Path,
    lo: int | None,
    hi: int | None,
    wanted: frozenset[str] | None,
    symbol: str | None,
    batch_rows: int,
    counter: _RowCounter,
) -> Iterator[Bars]:
    """Filtered chunks of one file; every failure becomes a :class:`LoadError`."""
    if not path.is_file():
        raise LoadError(LoadErrorCode.NOT_FOUND, path, "no such file")
    fmt = _format(path)
    if fmt is None:
        raise LoadError(
            LoadErrorCode.UNSUPPORTED_FORMAT,
            path,
            f"unknown extension {''.join(path.suffixes) or '(none)'}; "
            "expected .parquet, .csv or .feather",
        )
    if path.stat().st_size == 0:
        raise LoadError(LoadErrorCode.EMPTY_FILE, path, "file is 0 bytes")
    batches = _open(path, fmt, batch_rows)
    columns: _Columns | None = None
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            break
        except LoadError:
            raise
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise _arrow_error(path, exc) from None
        if columns is None:
            columns = _columns(path, batch.schema, symbol)
        counter.rows += batch.num_rows
        if batch.num_rows:
            yield _filter(_to_bars(path, batch, columns), lo, hi, wanted)
    if columns is None or counter.rows == 0:
        raise LoadError(LoadErrorCode.EMPTY_FILE, path, "no rows")


def _open(path: Path, fmt: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Record batches of a file; opening errors surface on the first ``next``."""
    if fmt == "parquet":
        pf = pq.ParquetFile(path)
        yield from pf.iter_batches(batch_size=batch_rows, columns=_parquet_columns(pf.schema_arrow))
    elif fmt == "csv":
        opts = pcsv.ReadOptions(block_size=64 << 20)
        with pa.input_stream(str(path), compression="detect") as stream:
            reader = pcsv.open_csv(stream, read_options=opts)
            empty = True
            for batch in reader:
                empty = False
                yield batch
            if empty:  # header only: still report the columns
                yield pa.RecordBatch.from_pylist([], schema=reader.schema)
    else:
        try:
            reader = pa.ipc.open_file(pa.memory_map(str(path)))
        except pa.ArrowInvalid:  # feather v1 is not an IPC file
            table = pfeather.read_table(str(path))
            yield from table.to_batches(max_chunksize=batch_rows) or [
                pa.RecordBatch.from_pylist([], schema=table.schema)
            ]
            return
        if reader.num_record_batches == 0:
            yield pa.RecordBatch.from_pylist([], schema=reader.schema)
        for i in range(reader.num_record_batches):
            yield reader.get_batch(i)


def _parquet_columns(schema: pa.Schema) -> list[str] | None:
    """Only the columns bars need, so wide files (sp500 has 9) read less."""
    by_lower = {n.lower(): n for n in schema.names}
    needed = [by_lower[c] for c in (*SYMBOL_COLUMNS, *TIME_COLUMNS, *VALUE_FIELDS) if c in by_lower]
    return needed or None


@dataclass(frozen=True, slots=True)
class _Columns:
    symbol: str | None
    fixed_symbol: str | None
    time: str
    values: tuple[str, ...]


def _columns(path: Path, schema: pa.Schema, symbol: str | None) -> _Columns:
    by_lower = {n.lower(): n for n in schema.names}
    sym_col = next((by_lower[c] for c in SYMBOL_COLUMNS if c in by_lower), None)
    time_col = next((by_lower[c] for c in TIME_COLUMNS if c in by_lower), None)
    missing = [c for c in VALUE_FIELDS if c not in by_lower]
    if time_col is None:
        missing.insert(0, "/".join(TIME_COLUMNS))
    fixed = None
    if sym_col is None:
        fixed = symbol or symbol_from_filename(path)
        if fixed is None:
            missing.insert(0, "/".join(SYMBOL_COLUMNS) + " (or a freqtrade file name)")
    if missing or time_col is None:
        raise LoadError(
            LoadErrorCode.MISSING_COLUMNS,
            path,
            f"missing {', '.join(missing)}; found {', '.join(schema.names) or 'none'}",
        )
    return _Columns(sym_col, fixed, time_col, tuple(by_lower[c] for c in VALUE_FIELDS))


def _to_bars(path: Path, batch: pa.RecordBatch, cols: _Columns) -> Bars:
    try:
        if cols.symbol is not None:
            symbols, code = arrow_symbols(batch.column(cols.symbol))
        else:
            symbols, code = (cols.fixed_symbol or "",), np.zeros(batch.num_rows, np.int32)
        ts = arrow_ms(batch.column(cols.time), cols.time)
        values = [
            arrow_float(batch.column(c), f) for c, f in zip(cols.values, VALUE_FIELDS, strict=True)
        ]
    except TypeError as exc:
        raise LoadError(LoadErrorCode.WRONG_TYPES, path, str(exc)) from None
    except ValueError as exc:
        raise LoadError(LoadErrorCode.NULL_KEYS, path, str(exc)) from None
    except pa.ArrowException as exc:
        raise _arrow_error(path, exc) from None
    return Bars(symbols, code, ts, *values)


def _filter(bars: Bars, lo: int | None, hi: int | None, wanted: frozenset[str] | None) -> Bars:
    if wanted is not None:
        bars = bars.select(wanted)
    return bars.between(lo, hi)


def _arrow_error(path: Path, exc: BaseException) -> LoadError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "Empty CSV file" in text:
        return LoadError(LoadErrorCode.EMPTY_FILE, path, "file has no header and no rows")
    if "conversion error" in text.lower():  # CSV: a later block disagrees with the inferred type
        return LoadError(LoadErrorCode.WRONG_TYPES, path, text)
    return LoadError(LoadErrorCode.UNREADABLE, path, f"{type(exc).__name__}: {text}")


def _count_unsorted(bars: Bars) -> int:
    """Rows older than the previous row of the same symbol, in file order."""
    if len(bars) < 2:
        return 0
    order = np.argsort(bars.code, kind="stable")  # group by symbol, keep file order
    code, ts = bars.code[order], bars.ts[order]
    return int(np.count_nonzero((code[1:] == code[:-1]) & (ts[1:] < ts[:-1])))


def _count_duplicates(bars: Bars) -> int:
    """Rows of sorted bars repeating the previous row's (ts, symbol)."""
    if len(bars) < 2:
        return 0
    return int(np.count_nonzero((bars.ts[1:] == bars.ts[:-1]) & (bars.code[1:] == bars.code[:-1])))
