"""The fleet supervisor and ``decile up``, run on a fake service that crashes once."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from decile import servers
from decile.cli import app
from decile.fleet import ServiceSpec
from decile.supervisor import Backoff, FleetRunning, FleetState, Supervisor, proc_start_time
from decile.testing.probes import alive, group_members

FAKE_DIR = Path(__file__).parent / "fake_fleet"
DECILE = str(Path(sys.executable).parent / "decile")


def fake_env(state_dir: Path, **extra: str) -> dict[str, str]:
    state_dir.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "PYTHONPATH": str(FAKE_DIR), "DECILE_STATE_DIR": str(state_dir), **extra}


def started_pids(output: str) -> list[int]:
    return [int(pid) for pid in re.findall(r"started \S+ \(pid (\d+)", output)]


async def wait_until(check: Callable[[], bool], what: str, give_up_s: float = 60.0) -> None:
    """Poll ``check``; fail naming ``what`` if it never holds (a hang guard, not a timing check)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + give_up_s
    while not check():
        if loop.time() > deadline:
            pytest.fail(f"never happened: {what}")
        await asyncio.sleep(0.05)


def wait_until_sync(check: Callable[[], bool], what: str, give_up_s: float = 60.0) -> None:
    deadline = time.monotonic() + give_up_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}")
        time.sleep(0.05)


def ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def test_backoff_doubles_up_to_the_cap() -> None:
    backoff = Backoff(initial=0.5, factor=2.0, cap=30.0)
    assert [backoff.delay(n) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert backoff.delay(10_000) == 30


async def _run(sup: Supervisor) -> asyncio.Task[int]:
    return asyncio.ensure_future(sup.run())


async def test_restarts_a_crashed_service_with_backoff(tmp_path: Path) -> None:
    port = servers.free_port()
    out = io.StringIO()
    sup = Supervisor(
        (ServiceSpec("fake", "fake_service", port),),
        env=fake_env(tmp_path, FAKE_CRASHES="3"),
        backoff=Backoff(initial=0.05, factor=2.0, cap=0.15),
        grace=5.0, out=out,
    )  # fmt: skip
    task = await _run(sup)
    try:
        await wait_until(lambda: ready(port), "the fake serves /readyz after its crashes")
    finally:
        sup.request_stop()
        assert await task == 0
    text = out.getvalue()
    delays = re.findall(r"fake exited with code 3 after \S+; restart #(\d) in (\S+)s", text)
    assert delays == [("1", "0.05"), ("2", "0.10"), ("3", "0.15")]  # doubled, then capped
    assert text.count("fake   | crashing on purpose") == 3
    pids = started_pids(text)
    assert len(pids) == 4
    assert all(group_members(pid) == [] for pid in pids)


async def test_prefixes_every_output_line_with_the_service_name(tmp_path: Path) -> None:
    ports = (servers.free_port(), servers.free_port())
    out = io.StringIO()
    fleet = (ServiceSpec("alpha", "fake_service", ports[0]),
             ServiceSpec("beta-long", "fake_service", ports[1]))  # fmt: skip
    sup = Supervisor(fleet, env=fake_env(tmp_path, FAKE_CRASHES="0"), out=out)
    task = await _run(sup)
    try:
        await wait_until(lambda: all(ready(p) for p in ports), "both fakes are ready")
    finally:
        sup.request_stop()
        await task
    lines = out.getvalue().splitlines()
    assert lines
    assert all(re.match(r"(alpha    |beta-long|decile   ) \| ", line) for line in lines), lines
    assert f"alpha     | ready on port {ports[0]}" in lines
    assert f"beta-long | ready on port {ports[1]}" in lines
    assert "\x1b[" not in out.getvalue()  # not a TTY: no colours


async def test_stop_kills_a_service_that_ignores_sigterm_and_its_grandchildren(
    tmp_path: Path,
) -> None:
    port = servers.free_port()
    out = io.StringIO()
    sup = Supervisor(
        (ServiceSpec("stubborn", "fake_service", port),),
        env=fake_env(tmp_path, FAKE_CRASHES="0", FAKE_IGNORE_SIGTERM="1", FAKE_GRANDCHILD="1"),
        grace=0.5, out=out,
    )  # fmt: skip
    task = await _run(sup)
    try:
        await wait_until(lambda: ready(port), "the stubborn fake is ready")
    finally:
        sup.request_stop()
        await task
    text = out.getvalue()
    (pid,) = started_pids(text)
    grandchild = int(re.search(r"grandchild (\d+)", text).group(1))  # type: ignore[union-attr]
    assert "stubborn stopped (exit code -9)" in text
    assert group_members(pid) == []
    assert not alive(grandchild)


def test_a_stale_state_file_is_cleaned_and_its_leftovers_stopped(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = subprocess.Popen(["sleep", "600"], start_new_session=True)
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps({
        "supervisor": {"pid": dead.pid, "start": 1},
        "services": {"ingest": {"pid": leftover.pid, "start": proc_start_time(leftover.pid)}},
    }))  # fmt: skip
    state = FleetState(path, grace=2.0)
    notes = state.claim()
    try:
        assert any("stale" in note for note in notes)
        assert any("leftover ingest" in note for note in notes)
        assert leftover.wait(timeout=10) == -signal.SIGTERM
        assert json.loads(path.read_text())["supervisor"]["pid"] == os.getpid()
    finally:
        state.release()
    assert not path.exists()


def test_refuses_to_start_while_another_fleet_is_running(tmp_path: Path) -> None:
    path = tmp_path / "fleet.json"
    me = {"pid": os.getpid(), "start": proc_start_time(os.getpid())}
    path.write_text(json.dumps({"supervisor": me}))
    with pytest.raises(FleetRunning, match=f"pid {os.getpid()}"):
        FleetState(path).claim()
    assert path.exists()  # someone else's: left alone


def test_up_with_no_installed_service_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(FAKE_DIR))
    result = CliRunner().invoke(
        app, ["up", "--fleet", "fake_registry:GHOSTS", "--state-dir", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert "nothing to run" in result.output
    assert not (tmp_path / "fleet.json").exists()


def _status(env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DECILE, "status", "--fleet", "fake_registry:FLEET"],
        env=dict(env), capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_sigint_to_decile_up_leaves_no_process_and_no_state_file(tmp_path: Path) -> None:
    port = servers.free_port()
    state_dir = tmp_path / "state"
    env = fake_env(state_dir, FAKE_FLEET_PORT=str(port), DECILE_EMBEDDED_ONLY="1")
    env.pop("DECILE_REDIS__URL", None)
    state_file = state_dir / "fleet.json"
    dead = subprocess.Popen(["true"])
    dead.wait()
    state_file.write_text(json.dumps({"supervisor": {"pid": dead.pid, "start": 1}}))  # stale
    log = tmp_path / "up.log"
    with log.open("w") as out:
        up = subprocess.Popen(
            [DECILE, "up", "--fleet", "fake_registry:FLEET", "--state-dir", str(state_dir)],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_until_sync(lambda: ready(port), "the fake serves /readyz under decile up")
        recorded = json.loads(state_file.read_text())
        status = _status(env)
        assert status.returncode == 0, status.stdout
        assert "ready" in status.stdout
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    text = log.read_text()
    assert "removed stale" in text
    assert "fake   | crashing on purpose" in text
    assert re.search(r"restart #1 in \S+s", text)
    assert "fake   | got SIGTERM, bye" in text
    assert not state_file.exists()
    assert recorded["supervisor"]["pid"] == up.pid
    assert recorded["servers"]["redis"]["origin"] == "embedded"
    pids = [*started_pids(text), recorded["servers"]["redis"]["pid"]]
    assert len(pids) == 3  # crashed fake, restarted fake, embedded redis
    assert all(group_members(pid) == [] for pid in pids)
    assert not servers.answers(recorded["servers"]["redis"]["url"])
    down = _status(env)
    assert down.returncode == 1
    assert "down" in down.stdout
