"""``decile up`` on the real, installed services: ready, replaying real data, and a Ctrl-C
that leaves no process and no state file behind."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
import httpx
import pytest

from decile.fleet import FLEET, by_name, installed
from decile.testing.probes import alive, eventually, free_port, metric_value

pytestmark = pytest.mark.e2e
DECILE = str(Path(sys.executable).parent / "decile")


async def test_decile_up_runs_every_installed_service_and_ctrl_c_leaves_nothing_behind(
    decile_env: dict[str, str], pg_dsn: str, tmp_path: Path
) -> None:
    """As ``make run`` does it: first-run models trained and promoted, then every service,
    replaying the bundled sample, with the inference service scoring its cycles."""
    state = tmp_path / "state"
    env = {**os.environ, **decile_env, "DECILE_STATE_DIR": str(state),
           "DECILE_INGEST__END": "2021-02-03T00:00:00Z"}
    proc = subprocess.Popen(  # noqa: ASYNC220 - a real CLI process, as a user runs it
        [DECILE, "up", "--state-dir", str(state)], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        async def all_ready() -> bool:
            r = await asyncio.to_thread(subprocess.run, [DECILE, "status"], env=env,
                                        capture_output=True, text=True)
            return r.returncode == 0

        # first-run training (every family on the bundled sample) comes before the services
        assert await eventually(all_ready, within=180), "decile status never reported ready"
        assert (state / "fleet.json").exists()

        async def replayed() -> bool:
            conn = await asyncpg.connect(pg_dsn)
            try:
                if not await conn.fetchval("SELECT to_regclass('bars') IS NOT NULL"):
                    return False
                return bool(await conn.fetchval("SELECT count(*) FROM bars") > 0)
            finally:
                await conn.close()

        assert await eventually(replayed, within=60), "no bar reached PostgreSQL"

        async def scored() -> bool:
            text = await asyncio.to_thread(_metrics, by_name("inference").http_port)
            return metric_value(text, "decile_inference_cycles_total", outcome="scored") > 0

        assert await eventually(scored, within=60), "inference scored no cycle"
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out[-3000:]
    pids = [int(p) for p in re.findall(r"started \S+ \(pid (\d+)", out)]
    names = {m for m in re.findall(r"started (\S+) \(pid", out)}
    assert names == {s.name for s in FLEET if installed(s)}
    assert pids
    assert not [p for p in pids if alive(p)]
    assert not (state / "fleet.json").exists()
    assert "entry@1.0.0 promoted to production" in out


def _metrics(port: int) -> str:
    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text


PROMETHEUS = shutil.which("prometheus")


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed (make ops-tools)")
async def test_a_real_prometheus_scrapes_every_service_of_the_running_fleet(
    decile_env: dict[str, str], pg_dsn: str, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    env = {**os.environ, **decile_env, "DECILE_STATE_DIR": str(state),
           "DECILE_INGEST__END": "2021-02-02T00:00:00Z"}
    services = [s for s in FLEET if installed(s)]
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        + "".join(
            f"  - job_name: {s.name}\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{s.http_port}']}}]\n"
            for s in services
        )
    )
    port = free_port()
    fleet = subprocess.Popen(  # noqa: ASYNC220 - real processes, as an operator runs them
        [DECILE, "up", "--state-dir", str(state), "--no-train"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    prom = subprocess.Popen(  # noqa: ASYNC220
        [str(PROMETHEUS), f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        async with httpx.AsyncClient(timeout=5) as client:

            async def all_up() -> bool:
                try:
                    targets = (await client.get(f"{base}/targets")).json()["data"]["activeTargets"]
                except (httpx.HTTPError, KeyError, ValueError):
                    return False
                return len(targets) == len(services) and all(
                    t["health"] == "up" for t in targets)

            assert await eventually(all_up, within=90), "not every service is up in Prometheus"

            async def series(expr: str) -> bool:
                r = (await client.get(f"{base}/query", params={"query": expr})).json()
                return bool(r["data"]["result"])

            for expr in ("decile_ready == 1", "decile_ingest_bars_total",
                         "decile_messages_in_total", "decile_consumer_pending",
                         "decile_recorder_rows_total"):
                assert await eventually(lambda e=expr: series(e), within=60), expr
    finally:
        prom.terminate()
        fleet.send_signal(signal.SIGINT)
        prom.wait(30)
        fleet.wait(60)
