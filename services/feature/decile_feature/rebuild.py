"""Rebuild the online state after a start: replay the MD stream up to the ack floor.

Replaying exactly the cycles at or before the durable consumer's ack floor
(through the same engine, publishing nothing) gives the state an uninterrupted
run would have: no warm-up gap after a restart. The consumer is then recreated
to start right after the floor: a message the dead process held unacked would
otherwise be redelivered only after its ack wait, behind newer cycles.
"""

from __future__ import annotations

import contextlib

import nats.js.errors as js_errors
from nats.js import api as js_api

from decile import codec
from decile.bus import Bus, consumer_config
from decile.events import BarBatch
from decile_feature.engine import Featuriser
from decile_feature.handlers import to_bars


async def rebuild(bus: Bus, durable: str, tf: str, featuriser: Featuriser) -> int:
    """Replay cycles ``<= ack floor`` of ``durable`` into ``featuriser``; returns how many."""
    stream = bus.subjects.stream("MD")
    try:
        info = await bus.js.consumer_info(stream, durable)
        floor = info.ack_floor.stream_seq if info.ack_floor and info.ack_floor.stream_seq else 0
    except js_errors.NotFoundError:
        floor = 0  # first start: the consumer will deliver everything
    replayed = await _replay(bus, stream, tf, floor, featuriser) if floor else 0
    with contextlib.suppress(js_errors.NotFoundError):
        await bus.js.delete_consumer(stream, durable)
    config = consumer_config(ordered=True, start_seq=floor + 1 if floor else None)
    config.durable_name = config.name = durable
    config.filter_subject = bus.subjects.md_bars(tf)
    await bus.js.add_consumer(stream, config)
    return replayed


async def _replay(bus: Bus, stream: str, tf: str, floor: int, featuriser: Featuriser) -> int:
    sub = await bus.js.pull_subscribe(
        bus.subjects.md_bars(tf),
        stream=stream,
        config=js_api.ConsumerConfig(
            deliver_policy=js_api.DeliverPolicy.ALL,
            ack_policy=js_api.AckPolicy.NONE,
            inactive_threshold=60.0,
        ),
    )
    replayed = 0
    try:
        while True:
            try:
                msgs = await sub.fetch(256, timeout=2.0)
            except TimeoutError:
                break
            done = False
            for msg in msgs:
                if msg.metadata.sequence.stream > floor:
                    done = True
                    break
                batch = codec.decode(msg.data, dict(msg.headers or {}), expect=BarBatch)
                assert isinstance(batch, BarBatch)
                featuriser.apply(batch.id, to_bars(batch))
                replayed += 1
            if done or msgs[-1].metadata.sequence.stream >= floor:
                break
    finally:
        await sub.unsubscribe()
    return replayed
