"""Wait until the fleet is idle: every durable consumer has handled everything before now.

Live bars arrive minutes apart and the fleet handles each cycle in
milliseconds, so each cycle meets a settled fleet. A replay that publishes its
next cycle only once the fleet has settled (``DECILE_INGEST__LOCKSTEP``) keeps
that property at replay speed: every service then sees the same interleaving of
its inputs as live trading would, whatever the machine's speed or a restart
in the middle, and the replay's decisions are reproducible to the last trade.

Settled means: two consecutive polls in which no stream grew and no durable
consumer (bar the skipped services') has a message pending or unacknowledged.
Two polls, because consumers are read one after another: a service that acks
between two reads has already published its output, which the second poll sees.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from nats.js import JetStreamContext

from decile.subjects import STREAMS, Subjects

__all__ = ["wait_settled"]


async def _snapshot(js: JetStreamContext, streams: list[str],
                    skip: tuple[str, ...]) -> tuple[tuple[int, ...], bool]:
    seqs, idle = [], True
    for name in streams:
        info = await js.stream_info(name)
        seqs.append(info.state.last_seq)
        try:
            consumers = await js.consumers_info(name)
        except (AttributeError, KeyError, TypeError):
            # a consumer being deleted or created right now (a restarting service
            # recreates its durables) can come back half-described: not settled, ask again
            idle = False
            continue
        for c in consumers:
            durable = c.config.durable_name or ""
            if not durable or durable.startswith(skip):
                continue
            if (c.num_pending or 0) > 0 or (c.num_ack_pending or 0) > 0:
                idle = False
    return tuple(seqs), idle


async def wait_settled(
    js: JetStreamContext,
    subjects: Subjects,
    *,
    skip: Iterable[str] = ("recorder",),
    streams: Iterable[str] = ("MD", "FEAT", "SIG", "RISK", "EXEC"),
    poll_s: float = 0.002,
    timeout_s: float | None = None,
) -> float:
    """Return once the fleet is settled (seconds waited); TimeoutError after ``timeout_s``.

    ``skip``: durable-name prefixes whose backlog nobody waits on (the recorder
    only writes down). ``timeout_s`` None waits for ever: a service that is down
    holds the replay, as it would hold live trading.
    """
    names = [subjects.stream(s) for s in streams if s in STREAMS]
    prefixes = tuple(f"{p}-" for p in skip)
    start = time.monotonic()
    last: tuple[int, ...] | None = None
    while True:
        seqs, idle = await _snapshot(js, names, prefixes)
        if idle and seqs == last:
            return time.monotonic() - start
        last = seqs if idle else None
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise TimeoutError(f"the fleet did not settle within {timeout_s}s")
        await asyncio.sleep(poll_s)
