"""deploy/nats/nats.conf on a real nats-server: each service may touch only its own subjects.

The server runs the checked-in config (accounts, per-service users and
permissions, passwords from the environment) on free loopback ports in a temp
dir. Publishing outside a user's allow-list is answered by the server with a
permissions violation and never stored; the real ingest path (provision the
streams, pipelined publishes, read the last cycle back) and a real guarded
pull consumer (the recorder's) work within their permissions.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from faststream.nats import NatsBroker
from faststream.nats.security import NatsUserPassword
from nats.errors import Error as NatsError
from ops_nats import NatsProc, nats_proc

from decile.bus import Bus, Guards, make_broker, provision_streams, subscribe
from decile.config import NatsSettings
from decile.events import DeadLetter, QuarantinedBar
from decile.fleet import FLEET
from decile.reasons import ReasonCode
from decile.subjects import STREAMS, Subjects
from decile.testing.probes import eventually, subject_matches
from decile_ingest.pump import Pump, last_published
from decile_ingest.settings import IngestSection
from decile_ingest.sources import build_source
from tools.ops import gen_nats
from tools.ops.catalog import OPS

CONF = gen_nats.CONF
TLS_CONF = CONF.parent / "nats-tls.conf"
SUBJECTS = Subjects()


def may_publish(user: str, subject: str) -> bool:
    perms = gen_nats.permissions(user, OPS[user])
    return any(subject_matches(p, subject) for p in perms["publish"]["allow"])


@pytest.fixture(scope="module")
def passwords() -> dict[str, str]:
    # nats-server parses a $VAR's value as a config token: one word starting with a letter
    return {u: "p" + secrets.token_hex(12) for u in gen_nats.users()}


def server_env(passwords: dict[str, str]) -> dict[str, str]:
    return {gen_nats.password_var(u).name: pw for u, pw in passwords.items()}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, passwords: dict[str, str]) -> Iterator[
    NatsProc
]:
    proc = nats_proc(tmp_path_factory.mktemp("nats-perms"), "perms", config=CONF,
                     env=server_env(passwords)).start()
    yield proc
    proc.stop()


def test_a_missing_password_variable_stops_the_server_naming_it(tmp_path: Path) -> None:
    env = server_env({u: "p" + secrets.token_hex(4) for u in gen_nats.users() if u != "risk"})
    proc = nats_proc(tmp_path, "nopw", config=CONF, env=env)
    with pytest.raises(RuntimeError, match="NATS_PASSWORD_RISK"):
        proc.start(timeout=5)


class Violations:
    """Collects the asynchronous -ERR the server sends for a refused publish."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    async def cb(self, err: Exception) -> None:
        self.errors.append(str(err))

    def about(self, subject: str) -> list[str]:
        # nats-py lower-cases the server's -ERR line
        return [e for e in self.errors
                if "permissions violation" in e.lower() and subject.lower() in e.lower()]


async def connect(server: NatsProc, user: str, passwords: dict[str, str],
                  errors: Violations | None = None) -> nats.NATS:
    return await nats.connect(server.url, user=user, password=passwords[user],
                              error_cb=(errors or Violations()).cb, allow_reconnect=False,
                              connect_timeout=5)


@pytest.fixture
async def streams(server: NatsProc, passwords: dict[str, str]) -> AsyncIterator[None]:
    """Fresh streams for each test (the ops user administers them)."""
    nc = await connect(server, "ops", passwords)
    js = nc.jetstream()
    for name in STREAMS:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(name)
    await provision_streams(js, SUBJECTS, NatsSettings())
    yield
    await nc.close()


async def stored(server: NatsProc, passwords: dict[str, str], stream: str) -> int:
    nc = await connect(server, "ops", passwords)
    try:
        return int((await nc.jetstream().stream_info(stream)).state.messages)
    finally:
        await nc.close()


def test_every_fleet_service_has_a_user_and_the_config_is_current() -> None:
    assert set(OPS) == {s.name for s in FLEET}, "tools/ops/catalog.py OPS must match FLEET"
    assert CONF.read_text() == gen_nats.render_conf(), (
        "deploy/nats/nats.conf is stale: run `python -m tools.ops.generate`"
    )


@pytest.mark.parametrize("subject", ["exec.order.BTC-USDT", "exec.fill.BTC-USDT",
                                     "exec.closed.BTC-USDT"])
def test_nothing_but_execution_may_publish_exec(subject: str) -> None:
    assert [u for u in OPS if may_publish(u, subject)] == ["execution"]


def test_each_service_publishes_only_its_own_dead_letters() -> None:
    for user in OPS:
        others = [s for s in OPS if s != user and may_publish(user, f"dlq.{s}")]
        assert may_publish(user, f"dlq.{user}"), user
        assert not others, user
    assert [p for p in gen_nats.permissions("recorder", OPS["recorder"])["publish"]["allow"]
            if not p.startswith("$JS.")] == ["dlq.recorder"]


async def test_inference_is_refused_risk_and_exec_but_publishes_its_candidates(
    server: NatsProc, passwords: dict[str, str], streams: None
) -> None:
    errors = Violations()
    nc = await connect(server, "inference", passwords, errors)
    js = nc.jetstream()
    ack = await js.publish("ml.candidate.BTC-USDT", b"{}", timeout=5)
    assert ack.stream == "SIG"
    for subject in ("risk.approved.BTC-USDT", "exec.order.BTC-USDT", "md.bars.5m"):
        await nc.publish(subject, b"{}")
    await nc.flush()
    for subject in ("risk.approved.BTC-USDT", "exec.order.BTC-USDT", "md.bars.5m"):
        assert await eventually(lambda s=subject: _true(errors.about(s)), within=5), (
            f"no permissions violation for {subject}: {errors.errors}"
        )
    # a JetStream publish outside its rights is never stored: no ack ever comes
    with pytest.raises(nats.errors.TimeoutError):
        await js.publish("risk.approved.ETH-USDT", b"{}", timeout=1)
    await nc.close()
    assert await stored(server, passwords, "RISK") == 0
    assert await stored(server, passwords, "EXEC") == 0
    assert await stored(server, passwords, "SIG") == 1


async def _true(value: Any) -> bool:
    return bool(value)


async def test_a_wrong_password_is_refused(server: NatsProc, passwords: dict[str, str]) -> None:
    with pytest.raises((NatsError, OSError)):
        await nats.connect(server.url, user="ingest", password="not-" + passwords["ingest"],
                           allow_reconnect=False, connect_timeout=3, max_reconnect_attempts=0)


def _broker(server: NatsProc, user: str, passwords: dict[str, str], guards: Guards | None = None,
            ssl_context: ssl.SSLContext | None = None, url: str | None = None) -> NatsBroker:
    """decile.bus.make_broker with the credentials passed as FastStream ``security``.

    ``make_broker`` itself builds the same from DECILE_NATS__USER/PASSWORD (tested below).
    """
    security = NatsUserPassword(user, passwords[user], ssl_context=ssl_context)
    return make_broker(NatsSettings(url=url or server.url, max_reconnect_attempts=0), user,
                       guards, security=security)


async def test_ingest_real_path_provisions_publishes_and_resumes_within_its_rights(
    server: NatsProc, passwords: dict[str, str], streams: None
) -> None:
    broker = _broker(server, "ingest", passwords)
    await broker.connect()
    bus = Bus(broker, SUBJECTS, "ingest")
    await provision_streams(bus.js, SUBJECTS, NatsSettings())  # what every service does at start
    cfg = IngestSection(source="generator", generator_symbols=4, generator_bars=40,
                        higher=("15m",))
    first = await Pump(bus, build_source(cfg), cfg).run()
    assert first.cycles > 0
    assert first.resumed_at is None
    assert await last_published(bus, "5m") is not None  # $JS.API.STREAM.MSG.GET.MD
    cycles = await stored(server, passwords, "MD")
    assert cycles > first.cycles  # 5m cycles and the 15m ones resampled from them
    again = await Pump(bus, build_source(cfg), cfg).run()  # restart: reads back, drops repeats
    assert again.resumed_at is not None
    quarantined = QuarantinedBar(code=ReasonCode.NON_FINITE, symbol="BTC/USDT", tf="5m",
                                 values={"close": "nan"})
    await bus.publish(quarantined)
    await broker.stop()
    assert await stored(server, passwords, "MD") == cycles + 1


async def test_recorder_consumes_every_stream_and_publishes_only_its_dead_letters(
    server: NatsProc, passwords: dict[str, str], streams: None
) -> None:
    seen: list[str] = []
    guards = Guards()
    broker = _broker(server, "recorder", passwords, guards)
    bus = Bus(broker, SUBJECTS, "recorder")

    async def record(events: list[Any]) -> None:
        seen.extend(e.id for e in events)

    for family, stream in (("risk", "RISK"), ("dlq", "DLQ")):
        subscribe(broker, bus, guards, handler=record, family=family, kind=None, event=None,
                  durable=f"recorder-{family}-all", stream=stream, batch=True, max_wait_s=0.2)
    await broker.start()
    errors = Violations()
    ops = await connect(server, "ops", passwords, errors)
    letter = DeadLetter(service="feature", code=ReasonCode.HANDLER_ERROR, error="boom",
                        subject="md.bars.5m", payload_b64="e30=")
    ops_bus = Bus(_broker(server, "ops", passwords), SUBJECTS, "ops")
    await ops_bus.broker.connect()
    await ops_bus.publish(letter)
    assert await eventually(lambda: _true(letter.id in seen), within=10)
    # acked: nothing left pending on the durable consumer
    js = ops.jetstream()
    info = await js.consumer_info("DLQ", "recorder-dlq-all")
    assert await eventually(
        lambda: _consumer_clear(js, "DLQ", "recorder-dlq-all"), within=10
    ), info
    # its own dead letters: allowed; anything else: refused
    rec = await connect(server, "recorder", passwords, errors)
    await rec.jetstream().publish("dlq.recorder", b"{}", timeout=5)
    await rec.publish("md.bars.5m", b"{}")
    await rec.publish("dlq.ingest", b"{}")
    await rec.flush()
    assert await eventually(lambda: _true(errors.about("md.bars.5m")), within=5), errors.errors
    assert await eventually(lambda: _true(errors.about("dlq.ingest")), within=5), errors.errors
    await rec.close()
    await ops.close()
    await ops_bus.broker.stop()
    await broker.stop()


async def _consumer_clear(js: Any, stream: str, consumer: str) -> bool:
    info = await js.consumer_info(stream, consumer)
    return bool(info.num_pending == 0 and info.num_ack_pending == 0)


async def test_make_broker_authenticates_from_settings(
    server: NatsProc, passwords: dict[str, str]
) -> None:
    settings = NatsSettings(url=server.url, user="ingest", password=passwords["ingest"])
    broker = make_broker(settings, "ingest")
    await broker.connect()
    await broker.stop()


# ---- TLS -----------------------------------------------------------------------


async def _connect_and_close(url: str, user: str, password: str) -> None:
    nc = await nats.connect(url, user=user, password=password, allow_reconnect=False,
                            connect_timeout=3)
    await nc.close()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway CA and a server certificate for 127.0.0.1 (openssl CLI)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed: cannot make test certificates")
    d = tmp_path_factory.mktemp("tls")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=decile-ca",
        "-keyout", "ca.key", "-out", "ca.crt")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", "server.key", "-out", "server.csr")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "1", "-extfile", "ext.cnf", "-out", "server.crt")
    return d


async def test_tls_config_serves_the_same_permissions_over_tls(
    tmp_path: Path, certs: Path, passwords: dict[str, str]
) -> None:
    env = {**server_env(passwords), "NATS_TLS_CERT": str(certs / "server.crt"),
           "NATS_TLS_KEY": str(certs / "server.key")}
    proc = nats_proc(tmp_path, "tls", config=TLS_CONF, env=env).start()
    try:
        ctx = ssl.create_default_context(cafile=str(certs / "ca.crt"))
        broker = _broker(proc, "ingest", passwords, ssl_context=ctx,
                         url=f"tls://127.0.0.1:{proc.port}")
        await broker.connect()
        bus = Bus(broker, SUBJECTS, "ingest")
        await provision_streams(bus.js, SUBJECTS, NatsSettings())
        ack = await bus.publish(QuarantinedBar(code=ReasonCode.NON_FINITE, symbol="BTC/USDT",
                                               tf="5m", values={"close": "nan"}))
        assert ack.stream == "MD"
        await broker.stop()
        with pytest.raises((NatsError, OSError, asyncio.TimeoutError)):  # untrusted: refused
            await _connect_and_close(proc.url, "ingest", passwords["ingest"])
    finally:
        proc.stop()


async def test_risk_reads_watches_and_sets_kill_switches_within_its_rights(
    server: NatsProc, passwords: dict[str, str], streams: None
) -> None:
    """The risk user opens the kill-switch bucket, writes, reads and watches it; the
    inference user may not touch it."""
    from decile.killswitch import KillSwitches

    errors = Violations()
    nc = await connect(server, "risk", passwords, errors)
    switches = await KillSwitches.open(nc.jetstream(timeout=5))
    await switches.set("master", on=True, reason="permissions test", by="risk")
    watch = switches.watch()
    state = await asyncio.wait_for(watch.__anext__(), 10)
    assert state.master
    await switches.set("master", on=False, reason="done", by="risk")
    assert not (await switches.state()).master
    await watch.aclose()
    assert not [e for e in errors.errors if "permissions violation" in e.lower()], errors.errors
    await nc.close()
    denied = Violations()
    other = await connect(server, "inference", passwords, denied)
    await other.publish("$KV.decile-kill.master", b"{}")
    await other.flush()
    assert await eventually(lambda: _true(denied.about("$KV.decile-kill.master")), within=5)
    await other.close()
