"""Ordered consumers on the decision path, straight off nats-py.

A candidate crosses three services (confirm, risk, execution) before its
paper fill. FastStream's consume path (a task group per fetch, dependency
injection, its middleware stack) cost about 1 ms per message and per hop on
the 2-core reference machine, a third of the hop. An :class:`OrderedConsumer`
does what that path did for a one-at-a-time consumer and nothing more: fetch
one message, run it through the same :class:`decile.bus.Guard` (dedup,
metrics, retries, dead letters, ack), call the handler with the decoded event.

The FastStream subscriber is still declared when a service's AsyncAPI document
is built (``Runtime.document``), so the contract files are unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors as js_errors

from decile.bus import Bus, Guard, consumer_config
from decile.obs import get_logger

log = get_logger(__name__)

RETRY_S = 1.0  # after a failed fetch (reconnecting, stream being recreated)


@dataclass
class OrderedConsumer:
    """The durable ``durable`` on ``stream`` (full name), filtered on ``subject``, one
    message in flight, handled in stream order."""

    bus: Bus
    guard: Guard
    handler: Callable[[Any], Awaitable[Any]]
    stream: str
    subject: str
    durable: str
    max_wait_s: float = 1.0
    deliver_new_only: bool = False
    # stream sequence of the message being handled (0 before the first): a handler whose
    # durable state records how far it read each input reads it here
    position: int = 0

    async def run(self) -> None:
        """Consume until cancelled; a start hook may have (re)created the durable."""
        config = consumer_config(deliver_new_only=self.deliver_new_only, ordered=True)
        sub = await self.bus.js.pull_subscribe(
            self.subject, durable=self.durable, stream=self.stream, config=config)
        try:
            while True:
                try:
                    msgs = await sub.fetch(1, timeout=self.max_wait_s)
                except (TimeoutError, nats.errors.TimeoutError):
                    continue  # idle
                except (nats.errors.Error, js_errors.Error) as err:
                    log.warning("fetch failed, retrying", durable=self.durable, error=repr(err))
                    await asyncio.sleep(RETRY_S)
                    continue
                for raw in msgs:
                    self.position = raw.metadata.sequence.stream
                    try:
                        await self.guard.run_raw(self.handler, raw)
                    except (nats.errors.Error, js_errors.Error, OSError) as err:
                        # an ack or nak lost on the way: the server redelivers after ack_wait
                        log.warning("ack failed", durable=self.durable, error=repr(err))
        finally:
            await sub.unsubscribe()
