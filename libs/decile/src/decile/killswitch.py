"""Kill switches in a JetStream KV bucket: set by operators and services, watched by risk.

Bucket ``decile-kill`` (``<namespace>_decile-kill`` under a namespace, so tests
and side-by-side fleets never share switches). One key per switch:

==========================  ==========================================
``master``                  halts all new risk
``symbol.<TOKEN>``          one symbol (``symbol.BTC-USDT``)
``strategy.<id>``           one strategy
``auto.<reason>``           an automatic halt set by a service; halts all
==========================  ==========================================

A value is JSON ``{"on": bool, "reason": str, "by": str, "at": ISO-8601}``.
Switching off writes ``on: false`` rather than deleting, so the last word on
every switch (who, when, why) stays readable and in the bucket's history.

Setting a switch publishes nothing: the caller publishes :func:`changed_event`
on ``risk.kill.<scope>`` (the CLI does). The KV is the source of truth; the
event is the notification and the audit record in the RISK stream.

Unreadable values fail closed: a value that does not parse counts as ON.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal, cast, get_args

import nats.errors
import nats.js.api as js_api
import nats.js.errors as js_errors
from nats.js import JetStreamContext
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from decile import ids
from decile.events.risk import KillSwitchChanged
from decile.obs import get_logger
from decile.risk.book import KillState
from decile.subjects import TOKEN_RE, SubjectError, symbol_token, token_symbol

log = get_logger(__name__)

BUCKET = "decile-kill"
HISTORY = 16  # writes kept per key: the recent who/when/why of each switch
MAX_REASON = 500  # KillSwitchChanged.reason's limit

Scope = Literal["master", "symbol", "strategy", "auto"]
SCOPES: tuple[Scope, ...] = get_args(Scope)

# what a lost or restarting server raises; the watcher rebuilds itself on any of them
_NATS_ERRORS = (nats.errors.Error, TimeoutError, OSError)


def bucket_name(namespace: str = "") -> str:
    return f"{namespace}_{BUCKET}" if namespace else BUCKET


def switch_key(scope: Scope, key: str = "*") -> str:
    """The KV key of a switch; ``ValueError`` for a key that cannot be one."""
    if scope == "master":
        return "master"
    if scope == "symbol":
        try:
            return f"symbol.{symbol_token(key)}"
        except SubjectError as err:
            raise ValueError(str(err)) from None
    if scope in ("strategy", "auto"):
        if not TOKEN_RE.match(key):
            raise ValueError(f"{scope} {key!r} must be 1-64 of [A-Za-z0-9_-]")
        return f"{scope}.{key}"
    raise ValueError(f"unknown kill switch scope {scope!r}; one of {', '.join(SCOPES)}")


def parse_switch_key(kv_key: str) -> tuple[Scope, str]:
    """``symbol.BTC-USDT`` -> ``("symbol", "BTC/USDT")``; ``ValueError`` for foreign keys."""
    if kv_key == "master":
        return "master", "*"
    scope, _, key = kv_key.partition(".")
    if scope == "symbol":
        try:
            return "symbol", token_symbol(key)
        except SubjectError as err:
            raise ValueError(str(err)) from None
    if scope in ("strategy", "auto") and TOKEN_RE.match(key):
        return cast(Scope, scope), key
    raise ValueError(f"{kv_key!r} is not a kill switch key")


@dataclass(frozen=True, slots=True)
class Switch:
    """One switch as last written. ``key`` is ``*`` (master), a symbol
    (``BTC/USDT``), a strategy id or an auto reason; ``revision`` is the KV
    revision of the write (0 before it is stored)."""

    scope: Scope
    key: str
    on: bool
    reason: str
    by: str
    at: datetime
    revision: int = 0

    @property
    def kv_key(self) -> str:
        return switch_key(self.scope, self.key)

    def to_json(self) -> bytes:
        doc = {"on": self.on, "reason": self.reason, "by": self.by, "at": self.at.isoformat()}
        return json.dumps(doc).encode()

    @classmethod
    def from_entry(cls, kv_key: str, value: bytes | None, revision: int = 0) -> Switch:
        """Parse a stored value; one that does not parse counts as ON (fail closed)."""
        scope, key = parse_switch_key(kv_key)
        try:
            doc: Any = json.loads(value or b"")
            on, reason, by = doc["on"], str(doc.get("reason", "")), str(doc.get("by", ""))
            at = datetime.fromisoformat(doc["at"]).astimezone(UTC)
            if not isinstance(on, bool):
                raise TypeError("on must be a boolean")
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            log.warning("unreadable kill switch value, treated as ON", key=kv_key, error=str(err))
            return cls(
                scope,
                key,
                True,
                f"unreadable value: {err}"[:MAX_REASON],
                "?",
                datetime.fromtimestamp(0, UTC),
                revision,
            )
        return cls(scope, key, on, reason, by, at, revision)


def state_of(switches: Iterable[Switch]) -> KillState:
    """The kill state the risk gates read: only the switches that are ON."""
    on = [s for s in switches if s.on]
    return KillState(
        master=any(s.scope == "master" for s in on),
        symbols=frozenset(s.key for s in on if s.scope == "symbol"),
        strategies=frozenset(s.key for s in on if s.scope == "strategy"),
        auto=frozenset(s.key for s in on if s.scope == "auto"),
        reasons=MappingProxyType({s.kv_key: s.reason for s in on}),
    )


def changed_event(
    switch: Switch, *, producer: str = "kill", trace_id: str | None = None
) -> KillSwitchChanged:
    """The event announcing a write, for ``risk.kill.<scope>``.

    Its id derives from the key and the KV revision, so a retried publish of the
    same write is dropped by the stream's dedup, while every new write is new.
    """
    at_ms = int(switch.at.timestamp() * 1000)
    fields: dict[str, Any] = {
        "id": ids.stable_id(at_ms, BUCKET, switch.kv_key, switch.revision),
        "ts_event": switch.at,
        "scope": switch.scope,
        "key": switch.key,
        "on": switch.on,
        "reason": switch.reason,
        "by": switch.by or "operator",
        "producer": producer,
    }
    if trace_id is not None:
        fields["trace_id"] = trace_id
    return KillSwitchChanged(**fields)


class KillSwitches:
    """The kill switch bucket of one namespace. Build it with :meth:`open`."""

    def __init__(self, kv: KeyValue, namespace: str = "", *, timeout_s: float = 5.0) -> None:
        self.kv = kv
        self.namespace = namespace
        self.timeout_s = timeout_s

    @classmethod
    async def open(
        cls, js: JetStreamContext, namespace: str = "", *, replicas: int = 1
    ) -> KillSwitches:
        """Bind to the bucket, creating it on first use (safe when two processes race)."""
        name = bucket_name(namespace)
        try:
            kv = await js.key_value(name)
        except js_errors.BucketNotFoundError:
            config = js_api.KeyValueConfig(
                bucket=name,
                description="Decile kill switches (decile.killswitch)",
                history=HISTORY,
                replicas=replicas,
                storage=js_api.StorageType.FILE,
            )
            try:
                kv = await js.create_key_value(config)
            except js_errors.BadRequestError:  # created meanwhile with another config
                kv = await js.key_value(name)
        return cls(kv, namespace)

    async def set(
        self,
        scope: Scope,
        key: str = "*",
        *,
        on: bool,
        reason: str = "",
        by: str = "operator",
        at: datetime | None = None,
    ) -> Switch:
        """Write one switch and return it with its revision. Turning a switch ON needs
        a reason (it is what the rejected trades will say); OFF defaults to "cleared"."""
        reason = reason.strip()
        if on and not reason:
            raise ValueError("turning a kill switch on needs a reason")
        if len(reason) > MAX_REASON:
            raise ValueError(f"reason is {len(reason)} characters; at most {MAX_REASON}")
        key = "*" if scope == "master" else key
        switch = Switch(scope, key, on, reason or "cleared", by, at or datetime.now(UTC))
        revision = await self.kv.put(switch.kv_key, switch.to_json())
        log.info("kill switch set", key=switch.kv_key, on=on, reason=switch.reason, by=by)
        return Switch(switch.scope, key, on, switch.reason, by, switch.at, revision)

    async def switches(self) -> list[Switch]:
        """Every switch as last written (ON and OFF), in key order: one consistent read."""
        watcher = await self.kv.watchall()
        try:
            found: dict[str, Switch] = {}
            while (entry := await _next(watcher, self.timeout_s)) is not None:
                _apply(found, entry)
            return [found[k] for k in sorted(found)]
        finally:
            await _stop(watcher)

    async def state(self) -> KillState:
        return state_of(await self.switches())

    async def watch(
        self, *, resync_s: float = 10.0, retry_s: float = 1.0
    ) -> AsyncGenerator[KillState, None]:
        """Yield the full kill state now and again after every change that alters it.

        Survives a lost server: nats-py reconnects and re-creates the ordered consumer
        behind the watcher; on top of that, after ``resync_s`` without news the state is
        re-read and the watcher rebuilt if it drifted, and any error rebuilds it after
        ``retry_s``. A rebuilt watcher replays current values, so nothing is missed.
        """
        last: KillState | None = None
        while True:
            watcher: KeyValue.KeyWatcher | None = None
            try:
                watcher = await self.kv.watchall()
                current: dict[str, Switch] = {}
                ready = False
                while True:
                    try:
                        entry = await _next(watcher, resync_s)
                    except nats.errors.TimeoutError:
                        if not ready or await self.state() != state_of(current.values()):
                            log.warning("kill switch watcher stalled or drifted, rebuilding")
                            break
                        continue
                    if entry is None:
                        ready = True
                    else:
                        _apply(current, entry)
                    if ready and (state := state_of(current.values())) != last:
                        last = state
                        yield state
            except _NATS_ERRORS as err:
                log.warning("kill switch watch failed, retrying", error=repr(err), retry_s=retry_s)
                await asyncio.sleep(retry_s)
            finally:
                if watcher is not None:
                    await _stop(watcher)


def _apply(found: dict[str, Switch], entry: KeyValue.Entry) -> None:
    """Fold one KV entry into ``found``; foreign keys are logged and skipped."""
    if entry.operation in (KV_DEL, KV_PURGE):
        found.pop(entry.key, None)
        return
    try:
        found[entry.key] = Switch.from_entry(entry.key, entry.value, entry.revision or 0)
    except ValueError as err:
        log.warning("ignoring foreign key in the kill switch bucket", key=entry.key, error=str(err))


async def _next(watcher: KeyValue.KeyWatcher, wait_s: float) -> KeyValue.Entry | None:
    """The next entry; None marks the end of the initial replay. ``nats.errors.TimeoutError``
    when nothing came within ``wait_s``."""
    entry = await watcher.updates(timeout=wait_s)  # type: ignore[no-untyped-call]
    if entry is not None and not isinstance(entry, KeyValue.Entry):  # stopped under us
        raise nats.errors.ConnectionClosedError
    return entry


async def _stop(watcher: KeyValue.KeyWatcher) -> None:
    with contextlib.suppress(Exception):
        await watcher.stop()  # type: ignore[no-untyped-call]
