"""Replay real bars through ingest and recorder (real processes, NATS, PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import asyncpg
import numpy as np
import pytest

from decile.market import loaders
from decile.market.bars import Bars
from decile.market.resample import resample
from decile.testing.probes import (
    checksum_bars,
    eventually,
    free_port,
    output,
    service_process,
    stored_bars,
    wait_ready,
    wait_stored,
)

# One week of the bundled 20-pair sample: 40k real bars
START, END = "2021-02-08T00:00:00Z", "2021-02-15T00:00:00Z"


def file_rows(path: Path, start: str, end: str) -> Bars:
    return loaders.read_bars(path, start=start, end=end)


def expected(path: Path) -> tuple[int, str]:
    bars = file_rows(path, START, END)
    return len(bars), checksum_bars(list(bars.symbol), np.asarray(bars.ts), bars.ohlcv())


def ingest_env(decile_env: dict[str, str], speed: float = 0) -> dict[str, str]:
    return {
        **decile_env,
        "DECILE_SERVICE": "ingest",
        "DECILE_INGEST__START": START,
        "DECILE_INGEST__END": END,
        "DECILE_INGEST__SPEED": str(speed),
    }


async def test_replay_stores_exactly_the_files_rows(
    decile_env: dict[str, str], pg_dsn: str
) -> None:
    want = expected(loaders.demo_data_path())
    rport, iport = free_port(), free_port()
    rec_env = {**decile_env, "DECILE_SERVICE": "recorder"}
    with service_process("decile_recorder", rec_env, rport) as rec:
        await asyncio.to_thread(wait_ready, rport, rec)
        with service_process("decile_ingest", ingest_env(decile_env), iport) as ing:
            await asyncio.to_thread(wait_ready, iport, ing)

            assert await wait_stored(pg_dsn, want) == want
            # higher timeframes were resampled and stored too
            conn = await asyncpg.connect(pg_dsn)
            try:
                hourly = await conn.fetchval("SELECT count(*) FROM bars WHERE tf = '1h'")
            finally:
                await conn.close()
            # the sample has a real exchange outage (2021-02-11 03:45-04:55): no 04:00 bar
            want_hourly = len(resample(file_rows(loaders.demo_data_path(), START, END), "1h"))
            assert hourly == want_hourly == (7 * 24 - 1) * 20


async def test_kill_9_of_ingest_and_recorder_mid_replay_loses_and_doubles_nothing(
    decile_env: dict[str, str], pg_dsn: str
) -> None:
    want = expected(loaders.demo_data_path())
    rport, iport = free_port(), free_port()
    rec_env = {**decile_env, "DECILE_SERVICE": "recorder", "DECILE_RECORDER__BATCH_SIZE": "8"}
    # ~2016 cycles at 5m; 600,000x real time = 0.5 ms per cycle of pacing -> about 1-2 s a run
    ing_env = ingest_env(decile_env, speed=300_000)
    with service_process("decile_recorder", rec_env, rport) as rec:
        await asyncio.to_thread(wait_ready, rport, rec)
        with service_process("decile_ingest", ing_env, iport) as ing:
            await asyncio.to_thread(wait_ready, iport, ing)

            async def some() -> bool:
                return (await stored_bars(pg_dsn))[0] > 2_000

            assert await eventually(some, within=60)
            os.kill(ing.pid, signal.SIGKILL)
            os.kill(rec.pid, signal.SIGKILL)
            ing.wait()
            rec.wait()
    partial = (await stored_bars(pg_dsn))[0]
    assert 0 < partial < want[0], "the kill must land mid-replay"
    with service_process("decile_recorder", rec_env, rport) as rec:
        await asyncio.to_thread(wait_ready, rport, rec)
        with service_process("decile_ingest", ingest_env(decile_env), iport) as ing:
            await asyncio.to_thread(wait_ready, iport, ing)

            assert await wait_stored(pg_dsn, want) == want


@pytest.mark.parametrize(
    "content",
    [b"", b"symbol,date,open\nBTC/USDT,2021-01-01,1\n"],
    ids=["empty-file", "missing-columns"],
)
async def test_ingest_refuses_a_malformed_file_with_a_clear_error(
    decile_env: dict[str, str], tmp_path: Path, content: bytes
) -> None:
    bad = tmp_path / "bars.csv"
    bad.write_bytes(content)
    env = {**decile_env, "DECILE_SERVICE": "ingest", "DECILE_INGEST__PATH": str(bad)}
    port = free_port()
    with service_process("decile_ingest", env, port) as ing:
        code = await asyncio.to_thread(ing.wait, 30)
        out = output(ing)
    assert code != 0
    assert ("EMPTY_FILE" if not content else "MISSING_COLUMNS") in out
