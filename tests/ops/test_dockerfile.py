"""deploy/docker/Dockerfile: slim, non-root, healthy only when ready, locked dependencies.

No Docker engine here, so the builder's install step is simulated: its RUN line
is taken from the Dockerfile and run as is (paths moved into a temp dir) on a
copy of the build context filtered by Dockerfile.dockerignore. The resulting
venv must hold the service non-editable (the runtime stage copies only the
venv), pinned by requirements.lock; then the image's command and HEALTHCHECK
run against a private nats-server until the health check passes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ops_nats import nats_proc

from decile.testing.probes import free_port
from tools.ops.catalog import ROOT, implemented

DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
IGNORE = DOCKERFILE.with_name("Dockerfile.dockerignore")


def stages() -> list[list[str]]:
    """Instructions per stage, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("FROM "):
            out.append([])
        if out:
            out[-1].append(line)
    return out


def instruction(stage: list[str], name: str) -> list[str]:
    return [line[len(name) + 1:] for line in stage if line.startswith(name + " ")]


def test_runtime_stage_is_slim_non_root_and_checks_readiness() -> None:
    builder, runtime = stages()
    assert runtime[0].startswith("FROM python:")
    assert "-slim" in runtime[0]
    user = instruction(runtime, "USER")
    assert user
    assert user[-1].split(":")[0] not in ("0", "root")
    assert instruction(runtime, "COPY") == ["--from=builder /opt/venv /opt/venv"]
    health = " ".join(instruction(runtime, "HEALTHCHECK"))
    assert "/readyz" in health
    assert "DECILE_OBS__HTTP_PORT" in health
    assert not any("uv" in run.split() for run in instruction(runtime, "RUN"))
    assert "--no-sources" in " ".join(instruction(builder, "RUN"))


def context_copy(dest: Path, service: str) -> Path:
    """What BuildKit would send: the files the builder copies, filtered like the ignore file."""
    ignored = IGNORE.read_text()
    assert "!libs/decile/**" in ignored
    assert "!services/**" in ignored
    (dest / "tools" / "ops").mkdir(parents=True)
    shutil.copy(ROOT / "requirements.lock", dest / "requirements.lock")
    shutil.copy(ROOT / "tools" / "ops" / "lock_check.py", dest / "tools" / "ops")
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".mypy_cache")
    shutil.copytree(ROOT / "libs" / "decile", dest / "libs" / "decile", ignore=skip)
    shutil.copytree(ROOT / "services" / service, dest / "services" / service, ignore=skip)
    return dest


def uv() -> list[str]:
    found = shutil.which("uv")
    if found:
        return [found]
    probe = subprocess.run([sys.executable, "-m", "uv", "--version"], capture_output=True,
                           check=False)
    if probe.returncode == 0:
        return [sys.executable, "-m", "uv"]
    pytest.skip("uv not installed (make installs it)")


def simulate_builder(tmp: Path, service: str) -> Path:
    """Run the builder stage's install RUN line; returns the venv it made."""
    builder = stages()[0]
    run = next(r for r in instruction(builder, "RUN") if "uv venv" in r)
    src = context_copy(tmp / "src", service)
    venv = tmp / "venv"
    shim = tmp / "bin"
    shim.mkdir()
    (shim / "uv").write_text("#!/bin/sh\nexec " + " ".join(uv()) + ' "$@"\n')
    (shim / "uv").chmod(0o755)
    # the image installs with --no-cache; here uv's cache keeps the test fast
    script = (run.replace("/opt/venv", str(venv)).replace("/tmp/pins.txt", str(tmp / "pins"))
              .replace("--no-cache ", ""))
    env = {**os.environ, "SERVICE": service, "PATH": f"{shim}:{os.environ['PATH']}"}
    env.pop("VIRTUAL_ENV", None)
    result = subprocess.run(["sh", "-ec", script], cwd=src, env=env, capture_output=True,
                            text=True, timeout=540, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    shutil.rmtree(src)  # the runtime image has no sources: nothing may point into them
    return venv


@pytest.fixture(scope="module")
def ingest_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulate_builder(tmp_path_factory.mktemp("image-ingest"), "ingest")


@pytest.mark.parametrize("service", [s.name for s in implemented() if s.name != "ingest"])
def test_builder_installs_each_service_from_the_lock(tmp_path: Path, service: str) -> None:
    venv = simulate_builder(tmp_path, service)
    check = subprocess.run([str(venv / "bin" / "python"), "-c",
                            f"import decile, decile_{service.replace('-', '_')}"],
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr


def test_image_command_becomes_healthy_on_readyz(ingest_venv: Path, tmp_path: Path) -> None:
    runtime = stages()[1]
    env_line = " ".join(instruction(runtime, "ENV"))
    assert "DECILE_OBS__HTTP_HOST=0.0.0.0" in env_line
    cmd = json.loads(instruction(runtime, "CMD")[-1])
    health = json.loads(instruction(runtime, "HEALTHCHECK")[-1].split(" CMD ", 1)[1])
    server = nats_proc(tmp_path, "image").start()
    port = free_port()
    env = {"PATH": f"{ingest_venv / 'bin'}:/usr/bin:/bin", "PYTHONUNBUFFERED": "1",
           "DECILE_SERVICE": "ingest", "DECILE_OBS__HTTP_HOST": "127.0.0.1",
           "DECILE_OBS__HTTP_PORT": str(port), "DECILE_OBS__LOG_FORMAT": "json",
           "DECILE_STATE_DIR": str(tmp_path / "state"), "DECILE_NATS__URL": server.url,
           "HOME": str(tmp_path)}
    log = (tmp_path / "ingest.log").open("wb")
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline, healthy = time.monotonic() + 60, False
        while time.monotonic() < deadline and proc.poll() is None:
            probe = subprocess.run(health, env=env, capture_output=True, timeout=10, check=False)
            if probe.returncode == 0:
                healthy = True
                break
            time.sleep(0.5)
        assert healthy, (tmp_path / "ingest.log").read_text()[-3000:]
    finally:
        proc.terminate()
        try:
            assert proc.wait(20) == 0, (tmp_path / "ingest.log").read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()
            server.stop()
