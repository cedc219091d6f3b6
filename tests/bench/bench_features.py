"""Feature engines against TA-Lib, each beside its reference in the same run.

Online: one ``OnlineEngine.update`` = one cross-section of 1,200 generated
symbols through the full feature set (86 features), after a warm-up longer
than every feature's. Reference: a per-symbol TA-Lib loop computing 15
indicators (RSI, ATR, ADX, +DI, -DI, MACD, STOCH, WILLR, CCI, MFI, BBANDS,
OBV, AROON, ROC, EMA) on each symbol's last 300 bars for the same cycle, the
way a naive feature service would. A second engine row feeds the same market
with 2% of bars dropped during warm-up, so symbols sit at different positions
in their blocks (the general, slower path a live universe ends up on).

Offline: ``compute_offline`` over the 110-pair Binance set (3.5M bars) into
the full float64 matrix, in bar-rows per second. Reference: TA-Lib's 15
indicators over the same bars, symbol by symbol.

    python -m tests.bench.bench_features [--data PATH] [--symbols 1200] [--cycles 300]

Without the shared data the offline part runs on the bundled 20-pair sample.
Timings on a shared 2-vCPU VM vary run to run; each figure is the best (offline)
or the median/p95 (online) of several runs, all printed.
"""

from __future__ import annotations

import argparse
import gc
import time
from pathlib import Path
from typing import Any

import numpy as np
import talib

from decile.features import SCHEMA, OnlineEngine, compute_offline
from decile.market.bars import Bars
from decile.market.generator import MarketGenerator
from decile.market.loaders import load_demo, read_bars
from tests.bench.harness import Column, Row, add_ratio, machine, percentile, report

SHARED = (
    Path(__file__).resolve().parents[2].parent
    / "shared/data/binance-spot-5m-nfi/binance_spot_5m_2020-12_2021-03.parquet"
)
HISTORY = 300  # bars per symbol handed to TA-Lib each cycle (EMA200 needs 200)


def talib_15(o: Any, h: Any, lo: Any, c: Any, v: Any) -> list[Any]:
    """The 15 TA-Lib indicators of the reference, default-ish parameters."""
    return [
        talib.RSI(c, 14),
        talib.ATR(h, lo, c, 14),
        talib.ADX(h, lo, c, 14),
        talib.PLUS_DI(h, lo, c, 14),
        talib.MINUS_DI(h, lo, c, 14),
        talib.MACD(c, 12, 26, 9),
        talib.STOCH(h, lo, c, 14, 3, 0, 3, 0),
        talib.WILLR(h, lo, c, 14),
        talib.CCI(h, lo, c, 20),
        talib.MFI(h, lo, c, v, 14),
        talib.BBANDS(c, 20, 2.0, 2.0, 0),
        talib.OBV(c, v),
        talib.AROON(h, lo, 25),
        talib.ROC(c, 12),
        talib.EMA(c, 200),
    ]


# -- online --------------------------------------------------------------------------


def market(n_symbols: int, n_cycles: int) -> list[Bars]:
    gen = MarketGenerator(n_symbols=n_symbols, seed=42)
    return [gen.step() for _ in range(n_cycles)]


def time_engine(cycles: list[Bars], warm: int, drop: float) -> list[float]:
    """Milliseconds per ``update`` after ``warm`` cycles (with ``drop`` of warm-up bars lost)."""
    rng = np.random.default_rng(1)
    eng = OnlineEngine()
    for i, c in enumerate(cycles[:warm]):
        eng.update(c.take(rng.random(len(c)) >= drop) if drop and i < warm // 2 else c)
    out = []
    gc.collect()
    for c in cycles[warm:]:
        t = time.perf_counter()
        eng.update(c)
        out.append((time.perf_counter() - t) * 1e3)
    return out


def time_talib_loop(cycles: list[Bars], warm: int, n: int) -> list[float]:
    """Milliseconds per cycle of the per-symbol TA-Lib loop, on the same cycles."""
    fields = [
        np.ascontiguousarray(np.stack([getattr(c, f) for c in cycles]).T)
        for f in ("open", "high", "low", "close", "volume")
    ]  # (symbols, cycles) each
    out = []
    for t in range(warm, min(warm + n, len(cycles))):
        a = t - HISTORY + 1
        start = time.perf_counter()
        last = np.empty((fields[0].shape[0], 15))
        for s in range(fields[0].shape[0]):
            o, h, lo, c, v = (f[s, a : t + 1] for f in fields)
            for j, ind in enumerate(talib_15(o, h, lo, c, v)):
                last[s, j] = (ind[0] if isinstance(ind, tuple) else ind)[-1]
        out.append((time.perf_counter() - start) * 1e3)
    return out


def bench_online(n_symbols: int, n_cycles: int) -> None:
    warm = SCHEMA.max_warmup + 50
    cycles = market(n_symbols, warm + n_cycles)
    aligned = time_engine(cycles, warm, 0.0)
    spread = time_engine(cycles, warm, 0.02)
    ref = time_talib_loop(cycles, warm, 20)
    rows = [
        Row("OnlineEngine.update, 86 features", summary(aligned)),
        Row("OnlineEngine.update, positions spread (2% of warm-up bars dropped)", summary(spread)),
        Row("TA-Lib per-symbol loop, 15 indicators x 300 bars", summary(ref), reference=True),
    ]
    add_ratio(rows, "p50_ms", "ratio")
    report(
        "features_online",
        f"Online feature cycle: {n_symbols:,} symbols, one cross-section",
        rows,
        [
            Column("p50_ms", "median ms"),
            Column("p95_ms", "p95 ms"),
            Column("samples", "cycles", "{:,.0f}"),
            Column("ratio", "x reference (median)", "{:.3f}"),
        ],
        notes=[
            f"goal: median <= 5 ms for {n_symbols:,} symbols x {len(SCHEMA)} features",
            f"engine warmed up for {warm} cycles (longest warm-up {SCHEMA.max_warmup} bars)",
            "positions spread: symbols at different offsets in their window blocks take the "
            "gather/scatter path instead of contiguous slices",
        ],
        meta={**machine(["numpy", "polars", "ta-lib"]), "schema": SCHEMA.version},
    )


def summary(ms: list[float]) -> dict[str, float]:
    return {"p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95), "samples": len(ms)}


# -- offline -------------------------------------------------------------------------


def time_offline(bars: Bars, runs: int, **kw: Any) -> list[float]:
    out = []
    for _ in range(runs):
        gc.collect()
        t = time.perf_counter()
        res = compute_offline(bars, **kw)
        out.append(time.perf_counter() - t)
        del res
    return out


def time_talib_offline(bars: Bars, runs: int) -> list[float]:
    order = np.lexsort((bars.ts, bars.code))
    code = bars.code[order]
    cuts = np.flatnonzero(np.diff(code)) + 1
    per_symbol = [
        [
            np.ascontiguousarray(getattr(bars, f)[order][a:b])
            for f in ("open", "high", "low", "close", "volume")
        ]
        for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(code)], strict=True)
    ]
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        for arrays in per_symbol:
            talib_15(*arrays)
        out.append(time.perf_counter() - t)
    return out


def bench_offline(data: Path | None, runs: int) -> None:
    if data is not None and data.exists():
        bars, source = read_bars(data), f"{data.name} (110 Binance pairs, 5m)"
    else:
        bars, source = load_demo(), "bundled 20-pair sample (shared data absent)"
    n = len(bars)
    two = time_offline(bars, runs, threads=2)
    one = time_offline(bars, runs, threads=1)
    ref = time_talib_offline(bars, runs)

    def rate(seconds: list[float]) -> dict[str, Any]:
        best = min(seconds)
        return {
            "rows_s": n / best,
            "best_s": best,
            "all_s": " / ".join(f"{s:.2f}" for s in seconds),
        }

    rows = [
        Row(f"compute_offline, {len(SCHEMA)} features, 2 threads", rate(two)),
        Row(f"compute_offline, {len(SCHEMA)} features, 1 thread", rate(one)),
        Row("TA-Lib, 15 indicators, per symbol", rate(ref), reference=True),
    ]
    add_ratio(rows, "rows_s", "ratio")
    report(
        "features_offline",
        f"Offline features over {n:,} bars, {len(bars.present())} symbols",
        rows,
        [
            Column("rows_s", "bar-rows/s (best)", "{:,.0f}"),
            Column("best_s", "best s", "{:.2f}"),
            Column("all_s", "each run, s"),
            Column("ratio", "x reference", "{:.3f}"),
        ],
        notes=[
            f"data: {source}",
            "goal: >= 1,000,000 bar-rows/s for the full set",
            f"output: a {n:,} x {len(SCHEMA)} float64 matrix ({n * len(SCHEMA) * 8 / 1e9:.1f} GB),"
            " filled in the timed region (first touch of fresh pages included)",
            "TA-Lib computes 15 indicators and no normalisation, cross-pair, calendar "
            "or higher-timeframe feature",
        ],
        meta={**machine(["numpy", "polars", "ta-lib"]), "schema": SCHEMA.version, "rows": n},
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=SHARED)
    ap.add_argument("--symbols", type=int, default=1_200)
    ap.add_argument("--cycles", type=int, default=300)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip-offline", action="store_true")
    args = ap.parse_args()
    bench_online(args.symbols, args.cycles)
    if not args.skip_offline:
        bench_offline(args.data, args.runs)


if __name__ == "__main__":
    main()
