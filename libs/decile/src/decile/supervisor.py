"""Run the fleet as supervised subprocesses on one machine (``decile up``).

Each service is ``python -m <module>`` in its own process group, with its
own environment (``DECILE_SERVICE``, ``DECILE_OBS__HTTP_PORT``, the server
URLs). A crashed service is restarted with exponential backoff, reset once it
has stayed up for a while, so a crash loop costs little CPU and a rare crash
restarts at once. Every output line is prefixed with the service name.

Stopping (Ctrl-C or SIGTERM) sends SIGTERM to every process group, SIGKILL
after a grace period (at once on a second Ctrl-C), then stops the embedded
servers. While running, ``<state_dir>/fleet.json`` records the pids and
ports; it is removed on exit, and a stale one left by a killed run is
recognised by its dead supervisor pid and cleaned, never a reason to refuse.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from decile import servers
from decile.fleet import ServiceSpec, installed, needs_of

STATE_FILE = "fleet.json"
SUPERVISOR_NAME = "decile"
_COLORS = ("36", "33", "35", "32", "34", "91", "96", "93", "95", "92")
_READ_LIMIT = 1 << 20  # longest output line kept whole, bytes


class FleetRunning(RuntimeError):
    """Another supervisor owns the state directory; the message names its pid."""


# --------------------------------------------------------------------------- backoff


@dataclass(frozen=True)
class Backoff:
    """Restart delays: ``initial * factor**n`` capped at ``cap`` seconds.

    ``n`` counts consecutive crashes; it resets to 0 after the service has
    stayed up ``reset_after`` seconds, so an occasional crash restarts fast.
    """

    initial: float = 0.5
    factor: float = 2.0
    cap: float = 30.0
    reset_after: float = 60.0

    def delay(self, failures: int) -> float:
        """Seconds to wait before the restart following ``failures`` earlier crashes."""
        return float(min(self.cap, self.initial * self.factor ** min(failures, 64)))


# --------------------------------------------------------------------------- state file


def proc_start_time(pid: int) -> int | None:
    """Kernel start time of ``pid`` (clock ticks since boot), None if gone or a zombie.

    Stored beside each pid so a reused pid is never mistaken for ours.
    """
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    try:
        return None if fields[0] == "Z" else int(fields[19])
    except (IndexError, ValueError):
        return None


def _same_process(entry: Mapping[str, Any]) -> bool:
    pid = entry.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    start = proc_start_time(pid)
    return start is not None and start == entry.get("start")


def _kill_group_sync(pgid: int, grace: float) -> None:
    """SIGTERM a process group, wait up to ``grace`` s for its leader, then SIGKILL."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and proc_start_time(pgid) is not None:
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


@dataclass
class FleetState:
    """``fleet.json``: who runs the fleet, with which pids and ports, while it runs."""

    path: Path
    grace: float = 5.0
    _claimed: bool = field(default=False, repr=False)

    def claim(self) -> list[str]:
        """Create the state file; clean a stale one first. Returns notes about that cleanup.

        Raises :class:`FleetRunning` if the recorded supervisor is alive.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        notes: list[str] = []
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                notes += self._reclaim()
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(self._header(), f)
            self._claimed = True
            return notes
        raise FleetRunning(f"could not claim {self.path}: another supervisor keeps creating it")

    def _header(self) -> dict[str, Any]:
        pid = os.getpid()
        return {"supervisor": {"pid": pid, "start": proc_start_time(pid)}}

    def _reclaim(self) -> list[str]:
        """Remove a stale file after stopping what it recorded, if that still runs."""
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            data = {}
        sup = data.get("supervisor", {}) if isinstance(data, dict) else {}
        if isinstance(sup, dict) and _same_process(sup):
            raise FleetRunning(
                f"a fleet is already running (supervisor pid {sup['pid']}, state {self.path}); "
                f"stop it with Ctrl-C in its terminal or `kill {sup['pid']}`"
            )
        notes = [f"removed stale {self.path} (its supervisor is gone)"]
        for section in ("services", "servers"):
            entries = data.get(section, {}) if isinstance(data, dict) else {}
            for name, entry in (entries or {}).items():
                if isinstance(entry, dict) and _same_process(entry):
                    _kill_group_sync(int(entry["pid"]), self.grace)
                    notes.append(f"stopped leftover {name} (pid {entry['pid']})")
        self.path.unlink(missing_ok=True)
        return notes

    def record(
        self,
        services: Mapping[str, tuple[int, ServiceSpec]],
        endpoints: Mapping[str, servers.Endpoint],
    ) -> None:
        """Rewrite the file atomically with the live services and servers."""
        if not self._claimed:
            return
        data = self._header()
        data["services"] = {
            name: {"pid": pid, "start": proc_start_time(pid), "port": spec.http_port,
                   "module": spec.module}
            for name, (pid, spec) in services.items()
        }  # fmt: skip
        data["servers"] = {
            kind: {"url": servers.redact(ep.url), "origin": ep.origin, "pid": ep.pid,
                   "start": proc_start_time(ep.pid) if ep.pid else None}
            for kind, ep in endpoints.items()
        }  # fmt: skip
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=2))
        os.replace(tmp, self.path)

    def release(self) -> None:
        """Remove the file (only if we claimed it)."""
        if self._claimed:
            self.path.unlink(missing_ok=True)
            self._claimed = False


# --------------------------------------------------------------------------- supervisor


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


@dataclass
class Supervisor:
    """Runs ``fleet`` (already filtered to what should run) until asked to stop.

    ``env`` is the base environment of every service; ``service_env`` adds
    variables for one service by name (``decile up --data`` feeds ingest so).
    """

    fleet: tuple[ServiceSpec, ...]
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    service_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    backoff: Backoff = field(default_factory=Backoff)
    grace: float = 10.0
    out: TextIO = field(default_factory=lambda: sys.stdout)
    color: bool | None = None
    state: FleetState | None = None
    endpoints: Mapping[str, servers.Endpoint] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [spec.name for spec in self.fleet]
        self._width = max([len(n) for n in [*names, SUPERVISOR_NAME]])
        if self.color is None:
            self.color = bool(getattr(self.out, "isatty", lambda: False)())
        self._palette = dict(zip(names, itertools.cycle(_COLORS), strict=False))
        self._live: dict[str, tuple[int, ServiceSpec]] = {}
        self._stop = asyncio.Event()
        self._kill_now = asyncio.Event()

    # ----- output

    def _emit(self, name: str, text: str) -> None:
        label = f"{name:<{self._width}} |"
        if self.color:
            code = self._palette.get(name, "1")
            label = f"\x1b[{code}m{label}\x1b[0m"
        self.out.write(f"{label} {text}\n")
        self.out.flush()

    def say(self, text: str) -> None:
        """A line from the supervisor itself."""
        self._emit(SUPERVISOR_NAME, text)

    async def _pump(self, name: str, stream: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # longer than the limit: emit what we have
                line = await stream.read(_READ_LIMIT)
            if not line:
                return
            self._emit(name, line.decode(errors="replace").rstrip("\r\n"))

    # ----- control

    def request_stop(self, kill: bool = False) -> None:
        """Begin an orderly stop; ``kill=True`` skips the grace period."""
        self._stop.set()
        if kill:
            self._kill_now.set()

    def _on_signal(self, signame: str) -> None:
        if self._stop.is_set():
            self.say(f"{signame} again: killing every service now")
            self._kill_now.set()
        else:
            self.say(f"{signame}: stopping the fleet (again to kill at once)")
            self._stop.set()

    def _record(self) -> None:
        if self.state is not None:
            self.state.record(self._live, self.endpoints)

    # ----- one service

    def _env_for(self, spec: ServiceSpec) -> dict[str, str]:
        env = dict(self.env)
        env.update({ep.env_var: ep.url for ep in self.endpoints.values()})
        env.update(self.service_env.get(spec.name, {}))
        env["DECILE_SERVICE"] = spec.name
        env["DECILE_OBS__HTTP_PORT"] = str(spec.http_port)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    async def _spawn(self, spec: ServiceSpec) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", spec.module,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=self._env_for(spec),
            start_new_session=True,  # own process group: we decide when it gets signals
            limit=_READ_LIMIT,
        )  # fmt: skip
        self._live[spec.name] = (proc.pid, spec)
        self._record()
        self.say(f"started {spec.name} (pid {proc.pid}, port {spec.http_port})")
        return proc

    async def _wait_or_stop(self, proc: asyncio.subprocess.Process) -> int:
        """Exit code of ``proc``; if a stop is requested first, stop it (TERM, grace, KILL)."""
        waiting = asyncio.ensure_future(proc.wait())
        stopping = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not waiting.done():
            _killpg(proc.pid, signal.SIGTERM)
            killing = asyncio.ensure_future(self._kill_now.wait())
            await asyncio.wait(
                {waiting, killing}, timeout=self.grace, return_when=asyncio.FIRST_COMPLETED
            )
            killing.cancel()
            if not waiting.done():
                _killpg(proc.pid, signal.SIGKILL)
        return await waiting

    async def _supervise(self, spec: ServiceSpec, first_spawn: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        while not self._stop.is_set():
            try:
                proc = await self._spawn(spec)
            finally:
                first_spawn.set()
            started = loop.time()
            assert proc.stdout is not None
            pump = asyncio.ensure_future(self._pump(spec.name, proc.stdout))
            code = await self._wait_or_stop(proc)
            _killpg(proc.pid, signal.SIGKILL)  # whatever the service left in its group
            try:
                await asyncio.wait_for(pump, timeout=2.0)
            except TimeoutError:  # a daemonised grandchild holds the pipe
                pump.cancel()
            self._live.pop(spec.name, None)
            self._record()
            if self._stop.is_set():
                self.say(f"{spec.name} stopped (exit code {code})")
                return
            uptime = loop.time() - started
            if uptime >= self.backoff.reset_after:
                failures = 0
            delay = self.backoff.delay(failures)
            failures += 1
            self.say(
                f"{spec.name} exited with code {code} after {uptime:.1f}s; "
                f"restart #{failures} in {delay:.2f}s"
            )
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=delay)

    async def run(self, handle_signals: bool = False) -> int:
        """Start the fleet in order and supervise it until a stop; 0 after an orderly stop."""
        loop = asyncio.get_running_loop()
        if handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self._on_signal, sig.name)
        tasks: list[asyncio.Task[None]] = []
        try:
            for spec in self.fleet:
                if self._stop.is_set():
                    break
                first = asyncio.Event()
                tasks.append(asyncio.ensure_future(self._supervise(spec, first)))
                await first.wait()
            await self._stop.wait()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for task in tasks:
                task.cancel()
            for pid, _ in list(self._live.values()):  # only if a task was cancelled mid-flight
                _killpg(pid, signal.SIGKILL)
            if handle_signals:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)
        self.say("all services stopped")
        return 0


# --------------------------------------------------------------------------- whole run


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_fleet(
    fleet: Iterable[ServiceSpec],
    state_dir: Path,
    *,
    env: Mapping[str, str] | None = None,
    service_env: Mapping[str, Mapping[str, str]] | None = None,
    prefer_embedded: bool | None = None,
    backoff: Backoff | None = None,
    grace: float = 10.0,
    out: TextIO | None = None,
    prepare: Callable[[Mapping[str, servers.Endpoint], Callable[[str], None]], None] | None = None,
) -> int:
    """Claim the state dir, ensure servers, supervise the installed services, clean up.

    ``prepare(endpoints, say)`` runs once the servers answer and before any service
    starts (``decile up`` trains first-run models there).

    Blocking; meant for the main thread (it installs SIGINT/SIGTERM handlers).
    Whatever happens, the embedded servers it started are stopped and
    ``fleet.json`` is removed before it returns.
    """
    env = dict(os.environ if env is None else env)
    specs = tuple(spec for spec in fleet if installed(spec))
    state_dir = Path(state_dir).resolve()
    env["DECILE_STATE_DIR"] = str(state_dir)
    out = out or sys.stdout
    state = FleetState(state_dir / STATE_FILE, grace=grace)
    sup = Supervisor(
        specs, env=env, service_env=service_env or {}, backoff=backoff or Backoff(),
        grace=grace, out=out, state=state,
    )  # fmt: skip
    if not specs:
        sup.say("no service of the fleet is installed here; nothing to run (see `decile services`)")
        return 1
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)  # until the loop handles it
    endpoints: dict[str, servers.Endpoint] = {}
    try:
        for note in state.claim():
            sup.say(note)
        needs = sorted(needs_of(specs))
        if needs:
            sup.say(f"ensuring servers: {', '.join(needs)}")
        ensured = servers.ensure_servers(
            needs, state_dir / "servers", env=env, prefer_embedded=prefer_embedded
        )
        for kind, endpoint in ensured.items():
            endpoints[kind] = endpoint
        for ep in endpoints.values():
            sup.say(f"{ep.kind}: {servers.redact(ep.url)} ({ep.origin})")
        sup.endpoints = endpoints
        state.record({}, endpoints)
        if prepare is not None:
            prepare(endpoints, sup.say)
        return asyncio.run(sup.run(handle_signals=True))
    except KeyboardInterrupt:
        sup.say("interrupted")
        return 130
    finally:
        # Ignore further signals while cleaning up: every step below is bounded.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            owned = [ep for ep in endpoints.values() if ep.owned]
            if owned:
                sup.say("stopping embedded servers: " + ", ".join(ep.kind for ep in owned))
            servers.stop_all(endpoints.values())
            state.release()
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, previous)
