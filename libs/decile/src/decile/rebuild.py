"""Rebuild a service's in-memory state after a start: replay a stream up to the ack floor.

Replaying exactly the messages at or before the durable consumer's ack floor
(through the same code the handler runs, publishing nothing) gives the state an
uninterrupted run would have: no warm-up gap after a restart. The consumer is
then recreated to start right after the floor: a message the dead process held
unacked would otherwise be redelivered only after its ack wait, behind newer
ones. Used by the feature, confirm and risk services for their bar history.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import nats.js.errors as js_errors
from nats.aio.msg import Msg
from nats.js import api as js_api

from decile import codec
from decile.bus import Bus, consumer_config
from decile.events import Event

E = TypeVar("E", bound=Event)

__all__ = ["ack_floor", "newest_first", "read_after", "replay_to_floor", "resume_after",
           "resume_after_floor", "stored"]


async def replay_to_floor(
    bus: Bus,
    *,
    stream: str,
    subject: str,
    durable: str,
    event: type[E],
    apply: Callable[[E], None],
) -> int:
    """Feed every ``event`` on ``subject`` up to ``durable``'s ack floor to ``apply``.

    ``stream`` is the stream's key (``"MD"``), ``subject`` the full filter
    subject of the durable. Returns how many messages were replayed; recreates
    the durable (ordered, explicit ack) to continue after the floor.
    """
    name = bus.subjects.stream(stream)
    floor = await _ack_floor(bus, name, durable)
    replayed = await _replay(bus, name, subject, floor, event, apply) if floor else 0
    await _recreate(bus, name, subject, durable, floor)
    return replayed


async def resume_after_floor(bus: Bus, *, stream: str, subject: str, durable: str) -> int:
    """Recreate the ordered ``durable`` to continue right after its ack floor; returns it.

    For a consumer with one message in flight: the message a killed process held
    unacked comes back at once instead of after the ack wait (30 s), in order.
    """
    name = bus.subjects.stream(stream)
    floor = await _ack_floor(bus, name, durable)
    await _recreate(bus, name, subject, durable, floor)
    return floor


async def read_after(
    bus: Bus, *, stream: str, subject: str, after: int, event: type[E]
) -> list[tuple[int, E]]:
    """Every ``event`` on ``subject`` (full filter subject) of ``stream`` (a key) after
    sequence ``after``, up to the stream's end when read, with its sequence; messages
    that do not decode (dead-lettered when they were consumed) are skipped."""
    found: list[tuple[int, E]] = []
    async for msg in _scan(bus, bus.subjects.stream(stream), subject, after):
        with contextlib.suppress(codec.DecodeError):
            found.append((msg.metadata.sequence.stream, _decoded(msg, event)))
    return found


async def resume_after(bus: Bus, *, stream: str, subject: str, durable: str, seq: int) -> None:
    """Recreate the ordered ``durable`` to continue right after ``seq``."""
    await _recreate(bus, bus.subjects.stream(stream), subject, durable, seq)


async def ack_floor(bus: Bus, stream: str, durable: str) -> int:
    """The stream sequence ``durable`` on ``stream`` (a key) acked up to; 0 if it is new."""
    return await _ack_floor(bus, bus.subjects.stream(stream), durable)


async def stored(bus: Bus, stream: str, seq: int, event: type[E]) -> E:
    """The ``event`` stored at ``seq`` on ``stream`` (a key: ``"RISK"``): what a duplicate
    publish's ack points at, so a redelivery can adopt what its predecessor published."""
    return _decoded(await bus.js.get_msg(bus.subjects.stream(stream), seq), event)


async def newest_first(
    bus: Bus, stream: str, event: type[E], limit: int = 10_000
) -> AsyncIterator[E]:
    """The ``event`` messages on ``stream`` (a key), newest first, among its last ``limit``
    messages (other types are skipped)."""
    name = bus.subjects.stream(stream)
    last = (await bus.js.stream_info(name)).state.last_seq
    for seq in range(last, max(0, last - limit), -1):
        try:
            msg = await bus.js.get_msg(name, seq)
        except js_errors.NotFoundError:
            continue  # deleted or aged out
        if (msg.headers or {}).get(codec.H_TYPE) == event.type_name:
            yield _decoded(msg, event)


def _decoded(msg: js_api.RawStreamMsg | Msg, event: type[E]) -> E:
    decoded = codec.decode(msg.data or b"", dict(msg.headers or {}), expect=event)
    assert isinstance(decoded, event)
    return decoded


async def _ack_floor(bus: Bus, stream: str, durable: str) -> int:
    try:
        info = await bus.js.consumer_info(stream, durable)
    except js_errors.NotFoundError:
        return 0  # first start: the consumer will deliver everything
    return info.ack_floor.stream_seq if info.ack_floor and info.ack_floor.stream_seq else 0


async def _recreate(bus: Bus, stream: str, subject: str, durable: str, floor: int) -> None:
    with contextlib.suppress(js_errors.NotFoundError):
        await bus.js.delete_consumer(stream, durable)
    config = consumer_config(ordered=True, start_seq=floor + 1 if floor else None)
    config.durable_name = config.name = durable
    config.filter_subject = subject
    await bus.js.add_consumer(stream, config)


async def _replay(
    bus: Bus, stream: str, subject: str, floor: int, event: type[E], apply: Callable[[E], None]
) -> int:
    replayed = 0
    async for msg in _scan(bus, stream, subject, 0, upto=floor):
        apply(_decoded(msg, event))
        replayed += 1
    return replayed


async def _scan(
    bus: Bus, stream: str, subject: str, after: int, upto: int | None = None
) -> AsyncIterator[Msg]:
    """The messages on ``subject`` of ``stream`` (full name) after sequence ``after`` and up
    to ``upto`` (None: to the stream's end when read), through an unacked ephemeral consumer."""
    sub = await bus.js.pull_subscribe(
        subject,
        stream=stream,
        config=js_api.ConsumerConfig(
            deliver_policy=js_api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=after + 1,
            ack_policy=js_api.AckPolicy.NONE,
            inactive_threshold=60.0,
        ),
    )
    try:
        while True:
            try:
                msgs = await sub.fetch(256, timeout=2.0)
            except TimeoutError:
                return  # nothing (more) on the subject
            for msg in msgs:
                seq = msg.metadata.sequence.stream
                if upto is not None and seq > upto:
                    return
                yield msg
                if seq == upto:
                    return
            if msgs[-1].metadata.num_pending == 0:
                return
    finally:
        await sub.unsubscribe()
