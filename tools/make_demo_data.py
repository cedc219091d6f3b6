"""Build the bundled demo file decile/market/data/demo_binance_5m.parquet.

20 liquid Binance USDT pairs x 4 weeks of 5m bars (2021-02-01 .. 2021-03-01 UTC)
cut from the offline copy of NostalgiaForInfinity's test data, checked by the
quality gate, written in the canonical bar schema (symbol, ts, OHLCV) sorted
by (ts, symbol), zstd-compressed. Deterministic: rerunning gives the same rows.

    uv run python tools/make_demo_data.py [--source DIR_OR_FILE] [--out PATH]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pyarrow.parquet as pq

from decile.market.loaders import DEMO_FILE, load
from decile.market.quality import QualityState, check

SOURCE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "binance-spot-5m-nfi"
OUT = Path(__file__).resolve().parents[1] / "libs/decile/src/decile/market/data" / DEMO_FILE
START, END = "2021-02-01T00:00:00Z", "2021-03-01T00:00:00Z"
PAIRS = tuple(
    f"{base}/USDT"
    for base in (
        "BTC",
        "ETH",
        "ADA",
        "XRP",
        "DOT",
        "LINK",
        "LTC",
        "BCH",
        "SOL",
        "UNI",
        "AAVE",
        "ATOM",
        "AVAX",
        "FIL",
        "MATIC",
        "EOS",
        "XLM",
        "ETC",
        "THETA",
        "VET",
    )
)
MAX_BYTES = 5 * 1024 * 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=SOURCE)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    loaded = load(args.source, symbols=PAIRS, start=START, end=END, pattern="*.parquet")
    bars, report = loaded.bars, loaded.report
    missing = sorted(set(PAIRS) - set(bars.present()))
    if missing:
        print(f"source lacks {', '.join(missing)}", file=sys.stderr)
        return 1
    result = check(bars, QualityState.initial("5m"), now_ms=int(bars.ts.max()) + 300_000)
    if len(result.rejected):
        print(f"quality rejected rows: {result.rejected.counts()}", file=sys.stderr)
        return 1

    args.out.parent.mkdir(parents=True, exist_ok=True)
    # Event order keeps the file streamable cycle by cycle (loaders.stream_cycles).
    # Prices repeat tick values, so dictionary pages suit them; volume does not
    # repeat and compresses better split by byte.
    pq.write_table(
        bars.to_arrow(),
        args.out,
        compression="zstd",
        compression_level=19,
        row_group_size=64 * 1024,
        use_dictionary=["symbol", "open", "high", "low", "close"],
        use_byte_stream_split=["volume"],
    )
    size = args.out.stat().st_size
    print(
        f"wrote {args.out}: {len(bars):,} rows, {len(bars.symbols)} pairs, "
        f"{size:,} bytes; unsorted in source {report.unsorted_rows}, "
        f"missing bars {result.gaps.total} {result.gaps.by_symbol()}"
    )
    if size > MAX_BYTES:
        print(f"too big: {size:,} > {MAX_BYTES:,} bytes", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
