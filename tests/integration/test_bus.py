"""The bus against a real NATS JetStream server: streams, dedup, dead letters, redelivery."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import nats
import pytest

from decile.bus import StreamConflict, provision_streams
from decile.config import NatsSettings, ServiceSettings
from decile.events import QuarantinedBar
from decile.reasons import ReasonCode
from decile.service import create_runtime
from decile.subjects import STREAMS, Subjects
from decile.testing.probes import eventually, stream_messages


def quarantined(symbol: str = "BTC/USDT") -> QuarantinedBar:
    return QuarantinedBar(
        code=ReasonCode.NON_FINITE,
        symbol=symbol,
        tf="5m",
        bar_time=datetime(2021, 1, 1, tzinfo=UTC),
        values={"close": "nan"},
    )


async def test_provisioning_twice_changes_nothing_and_a_conflict_is_a_clear_error(
    nats_url: str, nats_namespace: str
) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    subjects = Subjects(nats_namespace)
    settings = NatsSettings(url=nats_url, namespace=nats_namespace)
    await provision_streams(js, subjects, settings)
    created = {n: (await js.stream_info(subjects.stream(n))).created for n in STREAMS}
    await provision_streams(js, subjects, settings)
    assert {n: (await js.stream_info(subjects.stream(n))).created for n in STREAMS} == created
    with pytest.raises(StreamConflict, match="duplicate_window"):
        await provision_streams(js, subjects, settings.model_copy(update={"duplicate_window_s": 5}))
    await nc.close()


async def test_same_event_published_twice_is_stored_once(
    nats_url: str, nats_namespace: str
) -> None:
    settings = ServiceSettings(nats={"url": nats_url, "namespace": nats_namespace})
    rt = create_runtime(settings, "probe")
    await rt.broker.connect()
    from decile.bus import provision_streams as provision

    await provision(rt.bus.js, rt.subjects, settings.nats)
    event = quarantined()
    first = await rt.bus.publish(event)
    second = await rt.bus.publish(event)
    assert not first.duplicate
    assert second.duplicate
    msgs = await stream_messages(rt.bus.js, rt.subjects.stream("MD"))
    assert len(msgs) == 1
    await rt.broker.stop()


async def _start(rt) -> None:  # type: ignore[no-untyped-def]
    await rt.broker.connect()
    await provision_streams(rt.bus.js, rt.subjects, rt.settings.nats)
    await rt.broker.start()
    rt.start_direct()


async def _stop(rt) -> None:  # type: ignore[no-untyped-def]
    await rt.stop_direct()
    await rt.broker.stop()


# FastStream's consumer and the direct one (decile.ordered) keep the same promises
CONSUMERS = pytest.mark.parametrize(
    "how", [{}, {"batch_size": 1, "ordered": True, "direct": True}], ids=["faststream", "direct"])


@CONSUMERS
async def test_redelivered_input_emits_no_duplicate_downstream_event(
    nats_url: str, nats_namespace: str, how: dict[str, object]
) -> None:
    """The handler publishes, then 'crashes' before its ack: the redelivery re-publishes
    the same derived id, which the server drops; the consumer then sees it once."""
    settings = ServiceSettings(nats={"url": nats_url, "namespace": nats_namespace})
    rt = create_runtime(settings, "relay")
    calls: list[str] = []

    async def relay(event: QuarantinedBar) -> None:
        calls.append(event.id)
        out = event.follow(
            QuarantinedBar, "relay", code=ReasonCode.DUPLICATE, symbol=event.symbol, tf=event.tf
        )
        await rt.bus.publish(out, subject=rt.subjects.dlq("relayed"))
        if len(calls) == 1:
            raise RuntimeError("crash after the side effect, before the ack")

    rt.subscribe(relay, family="md", kind="quarantine", event=QuarantinedBar, stream="MD",
                 **how)  # type: ignore[arg-type]
    await _start(rt)
    await rt.bus.publish(quarantined())

    async def relayed() -> list:
        return await stream_messages(
            rt.bus.js, rt.subjects.stream("DLQ"), rt.subjects.dlq("relayed")
        )

    assert await eventually(lambda: asyncio.sleep(0, len(calls) >= 2))
    await asyncio.sleep(0.3)
    assert len(calls) == 2  # delivered, failed, redelivered once, then acked
    assert len(await relayed()) == 1
    await _stop(rt)


@CONSUMERS
@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "DECODE_ERROR"),
        (
            b'{"type":"QuarantinedBar","schema_version":1,"symbol":"X","tf":"5m"}',
            "VALIDATION_ERROR",
        ),
        (
            b'{"type":"QuarantinedBar","schema_version":7,"code":"NON_FINITE","symbol":"X","tf":"5m"}',
            "UNKNOWN_SCHEMA_VERSION",
        ),
        (
            json.dumps(
                {
                    "type": "QuarantinedBar",
                    "schema_version": 1,
                    "code": "NON_FINITE",
                    "symbol": "X",
                    "tf": "5m",
                    "bar_time": "2021-01-01T00:00:00",
                }
            ).encode(),
            "VALIDATION_ERROR",
        ),
    ],
    ids=["bad-json", "missing-field", "unknown-schema-version", "naive-timestamp"],
)
async def test_malformed_message_is_dead_lettered_with_its_reason_and_payload(
    nats_url: str, nats_namespace: str, body: bytes, code: str, how: dict[str, object]
) -> None:
    settings = ServiceSettings(nats={"url": nats_url, "namespace": nats_namespace})
    rt = create_runtime(settings, "probe")
    seen: list[QuarantinedBar] = []

    async def handle(event: QuarantinedBar) -> None:
        seen.append(event)

    rt.subscribe(handle, family="md", kind="quarantine", event=QuarantinedBar, stream="MD",
                 **how)  # type: ignore[arg-type]
    await _start(rt)
    await rt.bus.js.publish(rt.subjects.md_quarantine("X"), body)
    await rt.bus.publish(quarantined())  # the service keeps serving after the bad one

    async def letters() -> list:
        return await stream_messages(rt.bus.js, rt.subjects.stream("DLQ"), rt.subjects.dlq("probe"))

    found = await eventually(letters)
    assert len(found) == 1
    letter = json.loads(found[0].data)
    assert letter["code"] == code
    assert letter["service"] == "probe"
    import base64

    assert base64.b64decode(letter["payload_b64"]) == body  # nothing lost
    assert await eventually(lambda: asyncio.sleep(0, len(seen) == 1))
    await _stop(rt)


def test_a_direct_consumer_is_ordered_one_message_at_a_time() -> None:
    rt = create_runtime(ServiceSettings(), "probe")

    async def handle(event: QuarantinedBar) -> None:
        return None

    with pytest.raises(ValueError, match="one message at a time"):
        rt.subscribe(handle, family="md", kind="quarantine", event=QuarantinedBar, stream="MD",
                     batch_size=16, direct=True)
    rt.subscribe(handle, family="md", kind="quarantine", event=QuarantinedBar, stream="MD",
                 batch_size=1, ordered=True, direct=True)
    assert [c.durable for c in rt.direct] == ["probe-md-quarantine"]
    assert not rt.broker.subscribers  # FastStream hears of it only for the AsyncAPI document
    rt.document()
    assert len(rt.broker.subscribers) == 1
