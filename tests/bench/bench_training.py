"""``decile train --family all`` end to end on the 110-pair Binance set, beside a bare LightGBM fit.

The command runs as a user runs it (a subprocess, its own fresh PostgreSQL
database as the registry, artifacts in a temporary folder): load 3.5M bars,
compute the 86 features, propose, label, split, fit the four families,
calibrate, export to ONNX, check parity, write the reports, compare with
production and register. Reference: ``lightgbm.train`` of the entry family
alone with the same parameters on the same prepared matrix, timed in the same
run, so the ratio says what the whole pipeline costs over one bare fit.

    python -m tests.bench.bench_training [--data PATH] [--symbols N]

Without the shared data it runs on the bundled 20-pair sample. Target on this
2-core machine: the 110-pair run in <= 10 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import lightgbm as lgb
import numpy as np

from decile.market.loaders import demo_data_path, load
from decile.testing.plugin import with_database
from decile.testing.probes import SHARED_DATA
from decile.training import build_dataset, chronological_split
from decile.training.models import FAMILIES, TrainConfig
from tests.bench.harness import Column, Row, add_ratio, machine, report

SHARED = SHARED_DATA / "binance-spot-5m-nfi"
ADMIN_DSN = os.environ.get("DECILE_POSTGRES__DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(with_database(ADMIN_DSN, "postgres"), timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def reference_fit(path: Path) -> tuple[float, int]:
    """Seconds of one ``lgb.train`` (entry, same params) on the prepared matrix, and its rows."""
    ds = build_dataset(load(path).bars)
    sp = chronological_split(ds.ts, horizon=ds.label_config.horizon, bar_ms=300_000)
    cfg = TrainConfig()
    params = cfg.params(FAMILIES["entry"])
    y = ds.win.astype(np.float64)
    train = lgb.Dataset(ds.x[sp.train], y[sp.train], free_raw_data=False)
    valid = lgb.Dataset(ds.x[sp.validation], y[sp.validation], reference=train)
    start = time.perf_counter()
    lgb.train(params, train, num_boost_round=cfg.num_boost_round, valid_sets=[valid],
              callbacks=[lgb.early_stopping(cfg.early_stopping_rounds, verbose=False)])
    return time.perf_counter() - start, len(ds)


def run_cli(path: Path, dsn: str, artifacts: Path) -> tuple[float, dict[str, Any]]:
    env = {**os.environ, "DECILE_POSTGRES__DSN": dsn, "DECILE_ARTIFACTS__ROOT": str(artifacts),
           "DECILE_OBS__LOG_LEVEL": "WARNING"}
    cmd = [sys.executable, "-m", "decile.cli", "train", "--family", "all", "--data", str(path),
           "--json"]
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"decile train failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return wall, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=SHARED if SHARED.exists() else None)
    args = parser.parse_args()
    path = args.data or demo_data_path()
    database = f"decile_bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(f'CREATE DATABASE "{database}"'))
    try:
        with tempfile.TemporaryDirectory(prefix="decile-bench-models-") as tmp:
            wall, summary = run_cli(path, with_database(ADMIN_DSN, database), Path(tmp))
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    ref_s, ref_rows = reference_fit(path)
    rows_n = summary["rows"]
    rows = [
        Row("lightgbm.train, entry only, prepared matrix", {"seconds": ref_s,
            "rows_s": ref_rows / ref_s}, reference=True),
        Row("decile train --family all (bars -> 4 registered versions)",
            {"seconds": wall, "rows_s": rows_n / wall}),
    ]
    add_ratio(rows, "seconds", "ratio")
    notes = [f"{summary['bars']:,} bars -> {rows_n:,} labelled proposals; target <= 600 s"]
    for fam in summary["families"]:
        what = fam.get("headline") or f"FAILED {fam.get('failure')}"
        notes.append(f"{fam['family']}: {fam['seconds']:.1f} s, {what}")
    report("training", f"Training: decile train on {path.name}", rows,
           [Column("seconds", "wall s"), Column("rows_s", "rows/s", "{:,.0f}"),
            Column("ratio", "x reference time")],
           notes=notes, meta={"machine": machine(["lightgbm", "onnxruntime", "polars"]),
                              "summary": summary})
    if not summary["ok"]:
        raise SystemExit("a family failed to train")


if __name__ == "__main__":
    main()
