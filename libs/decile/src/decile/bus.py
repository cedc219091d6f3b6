"""The bus every service stands on: FastStream over NATS JetStream.

- :func:`provision_streams` creates the seven streams idempotently: the same
  config twice changes nothing; a conflicting existing stream is a clear error.
- :class:`Bus` publishes events on the subject the event implies, with
  ``Nats-Msg-Id`` = event id, so the server drops a duplicate publish.
- :func:`subscribe` registers a durable pull consumer with explicit ack, our
  codec as decoder, and :class:`Guard` around the handler: a message that cannot
  be decoded or keeps failing becomes a :class:`DeadLetter` on ``dlq.<service>``
  and is acked, so there is no crash loop, no endless redelivery and nothing is
  silently dropped. An event id seen before is acked and skipped.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import nats.js.api as js_api
import nats.js.errors as js_errors
from faststream import BaseMiddleware
from faststream.message import StreamMessage
from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsBroker, PullSub
from nats.errors import NotJSMessageError
from nats.js import JetStreamContext

from decile import codec, metrics
from decile.config import NatsSettings
from decile.events import (
    BarBatch,
    CandidateSignal,
    ConfirmDecision,
    DeadLetter,
    Event,
    FeatureBatch,
    Fill,
    InferenceCycle,
    KillSwitchChanged,
    ModelActivated,
    ModelRejected,
    Order,
    QuarantinedBar,
    RetrainRequested,
    RiskDecision,
    TradeClosed,
)
from decile.obs import get_logger
from decile.reasons import ReasonCode
from decile.subjects import STREAMS, Subjects

log = get_logger(__name__)


def _catch_plain_fetch_timeouts() -> None:
    """Work around a FastStream 0.7 / nats-py 2.15+ mismatch.

    FastStream's pull loop catches ``nats.errors.TimeoutError`` but nats-py's
    ``fetch`` raises the plain ``asyncio.TimeoutError`` (its base class) when a
    pull expires empty; the task then dies, logs a traceback and is restarted
    every second. Binding the module's name to the base class makes the
    ``except`` clause catch both, which is what FastStream intends.
    """
    from faststream.nats.subscriber.usecases import stream_pull_subscriber

    stream_pull_subscriber.TimeoutError = TimeoutError  # type: ignore[attr-defined,misc,assignment]


_catch_plain_fetch_timeouts()

# Redeliveries before a processing failure is dead-lettered. Decode and
# validation failures are dead-lettered at once: retrying cannot fix them.
MAX_ATTEMPTS = 5
RETRY_DELAY_S = 0.5
SEEN_IDS = 100_000


class StreamConflict(RuntimeError):
    """An existing stream's config differs from the one this build expects."""


def subject_for(event: Event, subjects: Subjects) -> str:
    """The one subject an event is published on."""
    match event:
        case BarBatch():
            return subjects.md_bars(event.tf)
        case QuarantinedBar():
            return subjects.md_quarantine(event.code.value)
        case FeatureBatch():
            return subjects.feat_batch(event.tf)
        case CandidateSignal():
            return subjects.ml_candidate(event.symbol)
        case InferenceCycle():
            return subjects.ml_cycle(event.tf)
        case ConfirmDecision():
            sym = event.candidate.symbol
            vetoed = event.decision == "veto"
            return subjects.ml_vetoed(sym) if vetoed else subjects.ml_confirmed(sym)
        case RiskDecision():
            if event.outcome == "approved":
                return subjects.risk_approved(event.symbol)
            return subjects.risk_rejected(event.symbol)
        case Order():
            return subjects.exec_order(event.symbol)
        case Fill():
            return subjects.exec_fill(event.symbol)
        case TradeClosed():
            return subjects.exec_closed(event.symbol)
        case ModelActivated():
            return subjects.model_activated(event.family)
        case ModelRejected():
            return subjects.model_rejected(event.family)
        case RetrainRequested():
            return subjects.model_retrain(event.family)
        case KillSwitchChanged():
            return subjects.risk_kill(event.scope)
        case DeadLetter():
            return subjects.dlq(event.service)
    raise TypeError(f"no subject for {type(event).__name__}")


# ---- streams ------------------------------------------------------------------


def stream_config(name: str, subjects: Subjects, nats: NatsSettings) -> js_api.StreamConfig:
    return js_api.StreamConfig(
        name=subjects.stream(name),
        subjects=subjects.stream_subjects(name),
        retention=js_api.RetentionPolicy.LIMITS,
        storage=js_api.StorageType.FILE,
        num_replicas=nats.stream_replicas,
        duplicate_window=nats.duplicate_window_s,
        max_age=nats.max_age_days * 86_400,
        discard=js_api.DiscardPolicy.OLD,
    )


_COMPARED = ("subjects", "retention", "storage", "num_replicas", "duplicate_window", "max_age")


async def provision_streams(js: JetStreamContext, subjects: Subjects, nats: NatsSettings) -> None:
    """Create the fleet's streams; same config twice is a no-op, a conflict an error."""
    for stream in STREAMS:
        want = stream_config(stream, subjects, nats)
        name = subjects.stream(stream)
        try:
            have = (await js.stream_info(name)).config
        except js_errors.NotFoundError:
            try:
                await js.add_stream(want)
            except js_errors.BadRequestError as err:
                raise StreamConflict(f"cannot create stream {name}: {err.description}") from None
            continue
        diffs = []
        for field in _COMPARED:
            a, b = getattr(have, field), getattr(want, field)
            same = a is not None and abs(float(a) - b) < 1e-3 if isinstance(b, float) else a == b
            if not same:
                diffs.append(f"{field}: server has {a!r}, expected {b!r}")
        if diffs:
            raise StreamConflict(
                f"stream {name} exists with a different config ({'; '.join(diffs)}); "
                "update or delete it deliberately (nats stream edit/rm), or change DECILE_NATS__*"
            )


# ---- publishing ----------------------------------------------------------------


class Bus:
    """Publishes events with ``Nats-Msg-Id`` = event id and counts them.

    Publishes go straight to nats-py's JetStream context (no FastStream codec on
    the way out): the event's own headers are the contract.
    """

    def __init__(self, broker: NatsBroker, subjects: Subjects, service: str) -> None:
        self.broker = broker
        self.subjects = subjects
        self.service = service
        self._js: JetStreamContext | None = None

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            self._js = self.broker.connection.jetstream()
        return self._js

    def _encode(
        self, event: Event, subject: str | None, extra: Mapping[str, str] | None = None
    ) -> tuple[str, bytes, dict[str, str]]:
        subject = subject or subject_for(event, self.subjects)
        body, headers = codec.encode(event)
        if extra:
            headers.update(extra)
        metrics.MESSAGES_OUT.labels(self.service, _family(subject, self.subjects)).inc()
        return subject, body, headers

    async def publish(self, event: Event, subject: str | None = None) -> js_api.PubAck:
        """Publish and wait for the server's ack (``ack.duplicate`` if already stored)."""
        subject, body, headers = self._encode(event, subject)
        return await self.js.publish(subject, body, headers=headers, timeout=10.0)

    async def send(
        self, event: Event, headers: Mapping[str, str] | None = None
    ) -> asyncio.Future[js_api.PubAck]:
        """Pipelined publish: returns the future of the server's ack (await it later).
        ``headers`` are added to the event's own (provenance, never the contract)."""
        subject, body, all_headers = self._encode(event, None, headers)
        return await self.js.publish_async(subject, body, headers=all_headers)

    async def publish_many(
        self, events: list[Event], headers: Mapping[str, str] | None = None
    ) -> list[js_api.PubAck]:
        """Pipelined publishes; returns once the server acked every one."""
        return list(await asyncio.gather(*[await self.send(e, headers) for e in events]))


def _family(subject: str, subjects: Subjects) -> str:
    """``md.bars.5m`` -> ``md.bars`` for a bounded label."""
    tokens = subject.split(".")
    if subjects.namespace:
        tokens = tokens[1:]
    return ".".join(tokens[:2])


# ---- consuming -----------------------------------------------------------------


class Guard:
    """Per-subscriber policy: dedup, metrics, retries and dead letters.

    One message and a pulled batch go through the same steps on the raw
    JetStream messages: admit (count, drop a seen id), handle, then ack all, or
    retry all with backoff, or park all once the attempts are spent.
    """

    def __init__(self, bus: Bus, pattern: str, expect: type[Event] | None = None) -> None:
        self.bus = bus
        self.pattern = pattern
        self.expect = expect
        self.seen: OrderedDict[str, None] = OrderedDict()
        # labelled children resolved once, not per message
        service = bus.service
        self._in = metrics.MESSAGES_IN.labels(service, pattern)
        self._redelivered = metrics.REDELIVERIES.labels(service, pattern)
        self._duplicates = metrics.DUPLICATES.labels(service, pattern)
        self._seconds = metrics.HANDLER_SECONDS.labels(service, pattern)

    def remember(self, event_id: str) -> None:
        self.seen[event_id] = None
        if len(self.seen) > SEEN_IDS:
            self.seen.popitem(last=False)

    async def _admit(self, raw: Any) -> bool:
        """Count the message; ack and drop it when its event id was already handled."""
        self._in.inc()
        if _deliveries(raw) > 1:
            self._redelivered.inc()
        event_id = (raw.headers or {}).get(codec.H_MSG_ID)
        if event_id and event_id in self.seen:
            self._duplicates.inc()
            await raw.ack()
            return False
        return True

    async def run(self, call_next: Callable[[Any], Awaitable[Any]], msg: StreamMessage[Any]) -> Any:
        if isinstance(msg.raw_message, list):
            return await self.run_batch(call_next, msg)
        raw = msg.raw_message
        if not await self._admit(raw):
            return None
        try:
            return await self._handle(call_next, msg, [raw])
        except codec.DecodeError as err:  # decoded inside call_next: retrying cannot help
            await self._park(raw, err.code, str(err))
            return None

    async def run_raw(self, handler: Callable[[Any], Awaitable[Any]], raw: Any) -> None:
        """One raw JetStream message straight to ``handler`` (see :mod:`decile.ordered`):
        the same steps as :meth:`run`, decoding here instead of in FastStream."""
        if not await self._admit(raw):
            return
        try:
            event = codec.decode(raw.data, raw.headers, expect=self.expect)
        except codec.DecodeError as err:
            await self._park(raw, err.code, str(err))
            return
        await self._handle(lambda _: handler(event), None, [raw])

    async def run_batch(
        self, call_next: Callable[[Any], Awaitable[Any]], msg: StreamMessage[Any]
    ) -> Any:
        """A pulled batch: bad messages are parked one by one, the rest handled together."""
        raws: list[Any] = msg.raw_message
        good: list[Event] = []
        keep: list[Any] = []
        for raw in raws:
            if not await self._admit(raw):
                continue
            try:
                good.append(codec.decode(raw.data, raw.headers, expect=self.expect))
                keep.append(raw)
            except codec.DecodeError as err:
                await self._park(raw, err.code, str(err))
        if not good:
            return None
        _BATCHES[id(raws)] = good
        try:
            return await self._handle(call_next, msg, keep)
        finally:
            _BATCHES.pop(id(raws), None)

    async def _handle(
        self, call_next: Callable[[Any], Awaitable[Any]], msg: StreamMessage[Any] | None,
        raws: list[Any],
    ) -> Any:
        start = time.perf_counter()
        try:
            result = await call_next(msg)
        except codec.DecodeError:
            raise
        except Exception as err:
            await self._failed(raws, err)
            return None
        finally:
            self._seconds.observe(time.perf_counter() - start)
        for raw in raws:
            await raw.ack()
            if event_id := (raw.headers or {}).get(codec.H_MSG_ID):
                self.remember(event_id)
        return result

    async def _failed(self, raws: list[Any], err: Exception) -> None:
        metrics.ERRORS.labels(self.bus.service, type(err).__name__).inc()
        worst = max(_deliveries(r) for r in raws)
        if worst >= MAX_ATTEMPTS:
            for raw in raws:
                await self._park(raw, ReasonCode.HANDLER_ERROR, repr(err))
            return
        log.warning("handler failed, will retry", subject=raws[0].subject, size=len(raws),
                    error=repr(err), delivery=worst)
        for raw in raws:
            await raw.nak(delay=RETRY_DELAY_S * worst)

    async def _park(self, raw: Any, code: ReasonCode, error: str) -> None:
        """Park the original (body and headers intact) on ``dlq.<service>``, then ack it."""
        headers = {k: str(v) for k, v in (raw.headers or {}).items()}
        original = headers.get(codec.H_MSG_ID)
        letter = DeadLetter(
            producer=self.bus.service,
            service=self.bus.service,
            code=code,
            error=error[:4000],
            subject=raw.subject,
            headers=headers,
            payload_b64=base64.b64encode(raw.data).decode(),
            original_id=original,
            deliveries=_deliveries(raw),
        )
        # Ack only once the letter is stored: if this publish fails the original
        # stays unacked and is redelivered, so it is never lost.
        await self.bus.publish(letter)
        await raw.ack()
        metrics.DEAD_LETTERS.labels(self.bus.service, code.value).inc()
        log.warning("dead-lettered", subject=raw.subject, code=code.value, error=error[:300],
                    event_id=original)


def _deliveries(raw: Any) -> int:
    try:
        return int(raw.metadata.num_delivered)
    except (AttributeError, ValueError, TypeError):
        return 1


def _consumer_of(raw: Any) -> str | None:
    """The durable a JetStream message came through; None for a core NATS message
    (whose reply subject, e.g. a publisher's ack inbox, is not a JetStream ack)."""
    try:
        return getattr(getattr(raw, "metadata", None), "consumer", None)
    except NotJSMessageError:
        return None


class Guards(dict[str, Guard]):
    """Guards by durable consumer name; one broker middleware dispatches to them."""

    def middleware(self) -> type[BaseMiddleware]:
        guards = self

        class GuardMiddleware(BaseMiddleware):
            async def consume_scope(self, call_next: Any, msg: StreamMessage[Any]) -> Any:
                raw = msg.raw_message
                first = raw[0] if isinstance(raw, list) and raw else raw
                guard = guards.get(_consumer_of(first) or "")
                if guard is None:  # not one of ours (core NATS subscription)
                    return await call_next(msg)
                return await guard.run(call_next, msg)

        return GuardMiddleware


# Batches the Guard decoded one message at a time, keyed by the raw list's id.
_BATCHES: dict[int, list[Event]] = {}


def decoder_for(event: type[Event] | None) -> Callable[[StreamMessage[Any]], Awaitable[Any]]:
    async def decode(msg: StreamMessage[Any]) -> Any:  # async: FastStream runs sync ones in threads
        if isinstance(msg.raw_message, list):
            return _BATCHES[id(msg.raw_message)]
        return codec.decode(msg.body, msg.headers, expect=event)

    return decode


def consumer_config(
    *, deliver_new_only: bool = False, ordered: bool = False, start_seq: int | None = None
) -> js_api.ConsumerConfig:
    """Explicit ack; no server delivery cap (the Guard dead-letters first: a cap would drop
    silently). ``ordered`` keeps one message in flight, so a redelivery can never be
    overtaken by a later message: for consumers whose state depends on order.
    """
    policy = js_api.DeliverPolicy.NEW if deliver_new_only else js_api.DeliverPolicy.ALL
    if start_seq is not None:
        policy = js_api.DeliverPolicy.BY_START_SEQUENCE
    return js_api.ConsumerConfig(
        ack_policy=js_api.AckPolicy.EXPLICIT,
        ack_wait=30,
        max_deliver=-1,
        deliver_policy=policy,
        opt_start_seq=start_seq,
        max_ack_pending=1 if ordered else None,
    )


def consumer_subject(bus: Bus, family: str, kind: str | None, key: str | None) -> tuple[str, str]:
    """The filter subject of ``family.kind.>`` (or ``family.kind.key``) and its label for
    metrics (without the namespace)."""
    pattern = bus.subjects.all(family, kind)
    if key is not None:  # one concrete subject, e.g. md.bars.5m
        pattern = pattern.removesuffix(">") + key
    ns = bus.subjects.namespace
    return pattern, pattern.removeprefix(ns + ".") if ns else pattern


def subscribe(
    broker: NatsBroker,
    bus: Bus,
    guards: Guards,
    *,
    handler: Callable[..., Awaitable[Any]],
    family: str,
    kind: str | None,
    event: type[Event] | None,
    durable: str,
    key: str | None = None,
    stream: str,
    batch_size: int = 16,
    batch: bool = False,
    max_wait_s: float = 1.0,
    deliver_new_only: bool = False,
    ordered: bool = False,
    description: str | None = None,
) -> Any:
    """Register ``handler`` on ``family.kind.>`` (or ``family.kind.key``) as a durable
    pull consumer.

    Acks are explicit and happen in :class:`Guard` after the handler returns.
    """
    pattern, label = consumer_subject(bus, family, kind, key)
    guard = Guard(bus, label, event)
    config = consumer_config(deliver_new_only=deliver_new_only, ordered=ordered)
    guards.setdefault(durable, guard)
    sub = broker.subscriber(
        pattern,
        stream=JStream(name=bus.subjects.stream(stream), declare=False),
        durable=f"{durable}",
        config=config,
        # a batch waits up to max_wait_s to fill: large for sinks, small on latency paths
        pull_sub=PullSub(batch_size=batch_size, timeout=max_wait_s, batch=batch),
        decoder=decoder_for(event),  # type: ignore[arg-type]
        ack_policy=AckPolicy.MANUAL,
        title=f"{durable}:{pattern}",
        description=description or handler.__doc__,
    )
    return sub(handler)


def _security(nats: NatsSettings) -> Any:
    """Credentials and TLS from settings (never logged: they are SecretStr or file paths)."""
    import ssl

    from faststream.nats.security import NatsCredentials, NatsSecurity, NatsUserPassword

    ctx = ssl.create_default_context(cafile=nats.tls_ca) if nats.tls_ca else None
    if nats.creds_file:
        return NatsCredentials(nats.creds_file, ssl_context=ctx)
    if nats.user:
        password = nats.password.get_secret_value() if nats.password else ""
        return NatsUserPassword(nats.user, password, ssl_context=ctx)
    return NatsSecurity(ssl_context=ctx) if ctx else None


def make_broker(
    nats: NatsSettings, service: str, guards: Guards | None = None, **extra: Any
) -> NatsBroker:
    """A broker that reconnects forever with backoff and logs messages at DEBUG."""
    import logging

    extra.setdefault("security", _security(nats))
    return NatsBroker(
        [u.strip() for u in nats.url.split(",")],
        name=f"decile-{service}",
        connect_timeout=int(max(1, nats.connect_timeout_s)),
        reconnect_time_wait=int(max(1, nats.reconnect_wait_s)),
        max_reconnect_attempts=nats.max_reconnect_attempts,
        allow_reconnect=True,
        # FastStream logs every message at log_level: DEBUG keeps the hot path quiet;
        # its logger goes through ours (decile.obs quiets it below WARNING).
        logger=logging.getLogger("faststream.decile"),
        log_level=logging.DEBUG,
        graceful_timeout=10.0,
        middlewares=[guards.middleware()] if guards is not None else (),
        **extra,
    )
