"""Columnar OHLCV bars: one numpy array per field, many symbols in one container.

Symbols are stored as an ``int32`` code per row into ``symbols``, a sorted tuple
of unique names, not as a string per row. Why: sorting, grouping and
``np.unique`` on ints run in C at memory speed, a cross-section of 1,200
symbols costs 4.8 kB for its names instead of 1,200 Python objects, and
because the tuple is sorted, code order *is* name order, so sorting by
``(ts, code)`` sorts by ``(ts, symbol)``. The tuple may hold names no row uses
(a slice keeps its parent's universe); :meth:`Bars.compact` drops them.

``ts`` is the bar's OPEN time, int64 milliseconds since the epoch, UTC.
Prices and volume are float64. Arrays are read-only views, so a ``Bars``
handed to another component cannot be changed behind its back.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "ARROW_SCHEMA",
    "PRICE_FIELDS",
    "VALUE_FIELDS",
    "Bars",
    "arrow_float",
    "arrow_ms",
    "arrow_symbols",
    "encode_symbols",
    "remap_codes",
    "union_symbols",
]

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
F64 = npt.NDArray[np.float64]

PRICE_FIELDS: Final = ("open", "high", "low", "close")
VALUE_FIELDS: Final = (*PRICE_FIELDS, "volume")
ARROW_SCHEMA: Final = pa.schema(
    [
        pa.field("symbol", pa.dictionary(pa.int32(), pa.string()), nullable=False),
        pa.field("ts", pa.timestamp("ms", tz="UTC"), nullable=False),
        *(pa.field(name, pa.float64()) for name in VALUE_FIELDS),
    ]
)
# Universes already checked sorted and unique, by id. Holding the tuple keeps
# its id from being reused, so the identity test below is exact; a live feed
# reuses one universe tuple per cycle and skips an O(symbols) check each time.
_VALIDATED: dict[int, tuple[str, ...]] = {}
_VALIDATED_MAX: Final = 256
_TS_FACTOR: Final = {"s": (1_000, 1), "ms": (1, 1), "us": (1, 1_000), "ns": (1, 1_000_000)}


def _frozen(a: npt.ArrayLike, dtype: type[np.generic]) -> Any:
    """A read-only, contiguous 1-D view of ``a`` as ``dtype`` (copies only if needed)."""
    arr = np.ascontiguousarray(a, dtype=dtype)
    if arr.ndim != 1:
        raise ValueError(f"bar columns are 1-D, got shape {arr.shape}")
    view = arr.view()
    view.flags.writeable = False
    return view


def union_symbols(*universes: Sequence[str]) -> tuple[str, ...]:
    """The sorted union of symbol universes; returns the first one itself when all are equal."""
    first = tuple(universes[0]) if universes else ()
    if all(u is universes[0] or tuple(u) == first for u in universes[1:]):
        return first
    return tuple(sorted(set().union(*universes)))


def remap_codes(codes: I32, source: Sequence[str], target: Sequence[str]) -> I32:
    """Codes into ``source`` rewritten as codes into ``target`` (a superset, sorted)."""
    if source is target or tuple(source) == tuple(target):
        return codes
    tgt = np.asarray(target, dtype=str)
    lut = np.searchsorted(tgt, np.asarray(source, dtype=str)).astype(np.int32)
    if len(source) and (lut.max() >= len(tgt) or np.any(tgt[lut] != np.asarray(source))):
        raise ValueError("target universe does not contain every source symbol")
    return lut[codes] if len(codes) else codes.astype(np.int32)


def encode_symbols(names: npt.ArrayLike | str, n: int | None = None) -> tuple[tuple[str, ...], I32]:
    """Sorted universe and per-row codes for an array of names (or one name ``n`` times)."""
    if isinstance(names, str):
        return (names,), np.zeros(n or 0, dtype=np.int32)
    arr = np.asarray(names, dtype=str)
    uniq, inv = np.unique(arr, return_inverse=True)
    return tuple(str(s) for s in uniq), inv.astype(np.int32).reshape(-1)


@dataclass(frozen=True, eq=False, slots=True)
class Bars:
    """OHLCV bars of many symbols, one row per (symbol, bar), in columns.

    Invariants checked at construction: equal lengths, ``symbols`` sorted and
    unique, every code indexes ``symbols``. Row order is whatever the producer
    chose; loaders and the generator deliver ``(ts, symbol)`` order
    (:meth:`is_sorted`). Equality is :meth:`equals` (arrays have no ``==``).
    """

    symbols: tuple[str, ...]
    code: I32
    ts: I64
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "symbols", tuple(self.symbols))
        set_(self, "code", _frozen(self.code, np.int32))
        set_(self, "ts", _frozen(self.ts, np.int64))
        for name in VALUE_FIELDS:
            set_(self, name, _frozen(getattr(self, name), np.float64))
        n = len(self.ts)
        if any(len(getattr(self, f)) != n for f in ("code", *VALUE_FIELDS)):
            raise ValueError("bar columns differ in length")
        syms = self.symbols
        if _VALIDATED.get(id(syms)) is not syms:
            if any(a >= b for a, b in itertools.pairwise(syms)):
                raise ValueError("symbols must be sorted and unique")
            if len(_VALIDATED) >= _VALIDATED_MAX:
                _VALIDATED.clear()
            _VALIDATED[id(syms)] = syms
        if n and (int(self.code.min()) < 0 or int(self.code.max()) >= len(syms)):
            raise ValueError("a symbol code is outside the symbols tuple")

    # -- construction -----------------------------------------------------
    @classmethod
    def empty(cls, symbols: Sequence[str] = ()) -> Bars:
        """No rows; keeps ``symbols`` so concatenation does not have to remap."""
        z = np.empty(0, dtype=np.float64)
        return cls(tuple(symbols), np.empty(0, np.int32), np.empty(0, np.int64), z, z, z, z, z)

    @classmethod
    def from_arrays(
        cls,
        symbol: npt.ArrayLike | str,
        ts: npt.ArrayLike,
        open: npt.ArrayLike,
        high: npt.ArrayLike,
        low: npt.ArrayLike,
        close: npt.ArrayLike,
        volume: npt.ArrayLike,
    ) -> Bars:
        """Bars from per-row names (or one name for all rows) and value arrays."""
        ts_arr = np.asarray(ts, dtype=np.int64).reshape(-1)
        symbols, code = encode_symbols(symbol, len(ts_arr))
        return cls(symbols, code, ts_arr, open, high, low, close, volume)  # type: ignore[arg-type]

    @classmethod
    def from_ohlcv(
        cls, names: Sequence[str], ts: npt.ArrayLike | int, values: npt.ArrayLike
    ) -> Bars:
        """Bars from per-row names, one ts (or one per row) and an ``(n, 5)`` OHLCV matrix.

        The inverse of :meth:`row_names` / :meth:`ohlcv`: how a cross-section
        event (``BarBatch``: symbols + values matrix) becomes bars again.
        """
        matrix = np.asarray(values, dtype=np.float64).reshape(len(names), len(VALUE_FIELDS))
        ts_arr = np.broadcast_to(np.asarray(ts, dtype=np.int64), (len(names),))
        symbols, code = encode_symbols(np.asarray(names, dtype=str))
        return cls(symbols, code, ts_arr, *matrix.T)

    @classmethod
    def concat(cls, parts: Iterable[Bars]) -> Bars:
        """Rows of every part in order; symbol codes are remapped onto the union universe."""
        parts = list(parts)
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        universe = union_symbols(*(p.symbols for p in parts))
        code = np.concatenate([remap_codes(p.code, p.symbols, universe) for p in parts])
        cols = {f: np.concatenate([getattr(p, f) for p in parts]) for f in ("ts", *VALUE_FIELDS)}
        return cls(universe, code, **cols)

    def _derive(self, code: I32, ts: I64, *values: F64) -> Bars:
        """Rows picked from this container: the invariants hold already, skip the O(symbols) check.

        Keeps per-cycle slicing cheap (a cross-section of 1,200 symbols would
        otherwise re-verify 1,200 names per cycle).
        """
        out = object.__new__(Bars)
        set_ = object.__setattr__
        set_(out, "symbols", self.symbols)
        set_(out, "code", _frozen(code, np.int32))
        set_(out, "ts", _frozen(ts, np.int64))
        for name, arr in zip(VALUE_FIELDS, values, strict=True):
            set_(out, name, _frozen(arr, np.float64))
        return out

    # -- shape and access -------------------------------------------------
    def __len__(self) -> int:
        return len(self.ts)

    def __repr__(self) -> str:
        span = f", ts {self.ts.min()}..{self.ts.max()}" if len(self) else ""
        return f"Bars({len(self)} rows, {len(self.symbols)} symbols{span})"

    @property
    def symbol(self) -> npt.NDArray[np.str_]:
        """Per-row symbol names (materialised on demand; prefer ``code`` on hot paths)."""
        return (
            np.asarray(self.symbols, dtype=str)[self.code]
            if len(self.symbols)
            else (np.empty(0, dtype=str))
        )

    def row_names(self) -> tuple[str, ...]:
        """Per-row names as a tuple; free when the rows are the whole universe in order.

        That is the usual cross-section, so building an event costs no string work.
        """
        n = len(self)
        # n strictly increasing codes in [0, n) can only be 0..n-1
        if n == len(self.symbols) and (n < 2 or bool(np.all(self.code[1:] > self.code[:-1]))):
            return self.symbols
        return tuple(map(self.symbols.__getitem__, self.code.tolist()))

    def ohlcv(self) -> F64:
        """An ``(n, 5)`` float64 matrix of open, high, low, close, volume (a copy)."""
        return np.column_stack([getattr(self, f) for f in VALUE_FIELDS])

    def present(self) -> tuple[str, ...]:
        """Symbols that have at least one row, sorted."""
        used = np.unique(self.code)
        return tuple(self.symbols[i] for i in used)

    def slice(self, start: int, stop: int | None = None) -> Bars:
        """Rows ``[start, stop)`` as zero-copy views."""
        s = slice(start, stop)
        return self._derive(self.code[s], self.ts[s], *(getattr(self, f)[s] for f in VALUE_FIELDS))

    def take(self, rows: npt.ArrayLike) -> Bars:
        """Rows selected by a boolean mask (same length) or by integer positions."""
        idx = np.asarray(rows)
        if idx.dtype == np.bool_ and len(idx) != len(self):
            raise ValueError(f"mask has {len(idx)} rows, bars have {len(self)}")
        return self._derive(
            self.code[idx], self.ts[idx], *(getattr(self, f)[idx] for f in VALUE_FIELDS)
        )

    def select(self, symbols: Iterable[str]) -> Bars:
        """Rows of the given symbols only (unknown names select nothing)."""
        wanted = set(symbols)
        keep = np.fromiter((s in wanted for s in self.symbols), dtype=bool, count=len(self.symbols))
        return self.take(keep[self.code]) if len(self.symbols) else self

    def between(self, start_ms: int | None = None, end_ms: int | None = None) -> Bars:
        """Rows with ``start_ms <= ts < end_ms`` (either bound optional)."""
        mask = np.ones(len(self), dtype=bool)
        if start_ms is not None:
            mask &= self.ts >= start_ms
        if end_ms is not None:
            mask &= self.ts < end_ms
        return self if mask.all() else self.take(mask)

    def with_symbols(self, universe: Sequence[str]) -> Bars:
        """The same rows re-encoded against ``universe`` (a sorted superset of ``symbols``)."""
        universe = tuple(universe)
        if universe == self.symbols:
            return self
        code = remap_codes(self.code, self.symbols, universe)
        return Bars(universe, code, self.ts, *(getattr(self, f) for f in VALUE_FIELDS))

    def compact(self) -> Bars:
        """The same rows with unused symbols dropped from the universe."""
        if not len(self):
            return Bars.empty()
        used, code = np.unique(self.code, return_inverse=True)
        if len(used) == len(self.symbols):
            return self
        return Bars(
            tuple(self.symbols[i] for i in used),
            code.astype(np.int32),
            self.ts,
            *(getattr(self, f) for f in VALUE_FIELDS),
        )

    # -- order ------------------------------------------------------------
    def sort_order(self) -> npt.NDArray[np.intp]:
        """Stable permutation into ``(ts, symbol)`` order: equal keys keep their row order."""
        return np.lexsort((self.code, self.ts))

    def is_sorted(self) -> bool:
        """True when rows are in ``(ts, symbol)`` order (equal keys allowed)."""
        if len(self) < 2:
            return True
        dts = np.diff(self.ts)
        return bool(np.all((dts > 0) | ((dts == 0) & (np.diff(self.code) >= 0))))

    def sort(self) -> Bars:
        """Rows in event-time order across symbols; returns ``self`` when already sorted."""
        return self if self.is_sorted() else self.take(self.sort_order())

    def equals(self, other: object) -> bool:
        """Same rows with the same names and exactly the same values (NaN equals NaN)."""
        if not isinstance(other, Bars) or len(self) != len(other):
            return False
        if not np.array_equal(self.ts, other.ts):
            return False
        if self.symbols == other.symbols:
            same_names = np.array_equal(self.code, other.code)
        else:
            same_names = bool(np.array_equal(self.symbol, other.symbol))
        return same_names and all(
            np.array_equal(getattr(self, f), getattr(other, f), equal_nan=True)
            for f in VALUE_FIELDS
        )

    # -- Arrow ------------------------------------------------------------
    def to_arrow(self) -> pa.Table:
        """Table ``symbol`` (dictionary<int32, string>), ``ts`` (timestamp[ms, UTC]), OHLCV float64.

        Dictionary-encoded names cost one int per row and Parquet stores them natively.
        """
        symbol = pa.DictionaryArray.from_arrays(
            pa.array(self.code, pa.int32()), pa.array(self.symbols, pa.string())
        )
        ts = pa.array(self.ts, pa.timestamp("ms", tz="UTC"))
        cols = [symbol, ts, *(pa.array(getattr(self, f), pa.float64()) for f in VALUE_FIELDS)]
        return pa.Table.from_arrays(cols, schema=ARROW_SCHEMA)

    @classmethod
    def from_arrow(cls, table: pa.Table | pa.RecordBatch) -> Bars:
        """Bars from a table with columns ``symbol, ts, open, high, low, close, volume``.

        Accepted types: ``symbol`` string or dictionary of strings; ``ts`` a
        timestamp of any unit (naive means UTC; floored to ms), a date, or int64
        ms; values any integer/float/decimal (nulls become NaN so the quality
        check rejects them). Raises ``KeyError`` for a missing column,
        ``TypeError`` for a wrong type, ``ValueError`` for a null symbol or time.
        """
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        missing = [c for c in ("symbol", "ts", *VALUE_FIELDS) if c not in table.column_names]
        if missing:
            raise KeyError(f"missing columns: {', '.join(missing)}")
        symbols, code = arrow_symbols(table.column("symbol"))
        ts = arrow_ms(table.column("ts"), "ts")
        values = [arrow_float(table.column(f), f) for f in VALUE_FIELDS]
        return cls(symbols, code, ts, *values)


def arrow_symbols(col: pa.ChunkedArray | pa.Array) -> tuple[tuple[str, ...], I32]:
    """Sorted universe and codes of a string or dictionary<string> column, chunk by chunk.

    Encodes through each chunk's dictionary so 3.5M rows cost a few unique
    strings, not 3.5M Python objects.
    """
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    typ = col.type
    value_type = typ.value_type if pa.types.is_dictionary(typ) else typ
    if not (pa.types.is_string(value_type) or pa.types.is_large_string(value_type)):
        raise TypeError(f"symbol: expected strings, got {typ}")
    if col.null_count:
        raise ValueError(f"symbol: {col.null_count} null value(s)")
    encoded: list[tuple[tuple[str, ...], I32]] = []
    for chunk in chunks:
        if not pa.types.is_dictionary(chunk.type):
            chunk = chunk.dictionary_encode()
        indices = chunk.indices.to_numpy(zero_copy_only=False)
        uniq, inv = np.unique(
            np.asarray(chunk.dictionary.to_pylist(), dtype=str), return_inverse=True
        )
        encoded.append(
            (
                tuple(str(s) for s in uniq),
                inv.astype(np.int32).reshape(-1)[indices]
                if len(indices)
                else np.empty(0, np.int32),
            )
        )
    if not encoded:
        return (), np.empty(0, np.int32)
    universe = union_symbols(*(u for u, _ in encoded))
    return universe, np.concatenate([remap_codes(c, u, universe) for u, c in encoded])


def arrow_ms(col: pa.ChunkedArray | pa.Array, name: str) -> I64:
    """Epoch milliseconds (UTC) from a timestamp, date, int64-ms or ISO-string column."""
    typ = col.type
    if col.null_count:
        raise ValueError(f"{name}: {col.null_count} null value(s)")
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        col = _parse_time_strings(col, name)
        typ = col.type
    if pa.types.is_timestamp(typ):
        ints = np.asarray(pc.cast(col, pa.int64()).to_numpy(), dtype=np.int64)  # stored UTC
        mul, div = _TS_FACTOR[typ.unit]
        return ints * mul if div == 1 else ints // div
    if pa.types.is_date32(typ):
        days = np.asarray(pc.cast(col, pa.int32()).to_numpy(), dtype=np.int64)
        return days * 86_400_000
    if pa.types.is_date64(typ) or pa.types.is_integer(typ):
        return np.asarray(pc.cast(col, pa.int64()).to_numpy(), dtype=np.int64)
    raise TypeError(f"{name}: expected a timestamp, date or int64 milliseconds, got {typ}")


def _parse_time_strings(col: pa.ChunkedArray | pa.Array, name: str) -> Any:
    for target in (pa.timestamp("ms", tz="UTC"), pa.timestamp("ms")):
        try:
            return pc.cast(col, target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    raise TypeError(f"{name}: strings that are not ISO-8601 times")


def arrow_float(col: pa.ChunkedArray | pa.Array, name: str) -> F64:
    """float64 values from a numeric column; nulls become NaN (the quality check's job)."""
    typ = col.type
    if pa.types.is_null(typ):  # an all-empty CSV column
        return np.full(len(col), np.nan)
    if not (pa.types.is_floating(typ) or pa.types.is_integer(typ) or pa.types.is_decimal(typ)):
        raise TypeError(f"{name}: expected numbers, got {typ}")
    arr = pc.cast(col, pa.float64())
    if arr.null_count:
        arr = pc.fill_null(arr, float("nan"))
    return np.asarray(arr.to_numpy(), dtype=np.float64)
