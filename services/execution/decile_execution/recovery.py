"""Start-up reads of the streams: what was published before a crash, and where to resume.

Both run before the consumers start. Neither replays history: the desk comes
from PostgreSQL (:mod:`decile_execution.state`).
"""

from __future__ import annotations

import nats.errors
import nats.js.errors as js_errors

from decile import codec
from decile.bus import Bus
from decile.obs import get_logger

log = get_logger(__name__)

SCAN_LIMIT = 10_000  # a crash leaves one input's events unsaved: a few, never thousands


async def published_after(
    bus: Bus, stream: str, seq: int, limit: int = SCAN_LIMIT
) -> dict[str, int]:
    """Event id (``Nats-Msg-Id``) -> stream sequence of the messages on ``stream`` after
    ``seq``: what a process that died between publishing and saving had published.

    Publishing them again is harmless inside the stream's duplicate window (the
    server drops them) and skipping them makes it harmless after it too. When the
    stream cannot be read (e.g. no permission to get messages) the window is all
    that protects, and a warning says so.
    """
    name = bus.subjects.stream(stream)
    found: dict[str, int] = {}
    try:
        last = (await bus.js.stream_info(name)).state.last_seq
        for n in range(max(seq + 1, last - limit + 1), last + 1):
            try:
                msg = await bus.js.get_msg(name, n)
            except js_errors.NotFoundError:
                continue  # deleted or aged out
            if event_id := (msg.headers or {}).get(codec.H_MSG_ID):
                found[event_id] = n
    except (nats.errors.Error, TimeoutError) as err:
        log.warning("cannot read the stream tail; relying on its duplicate window",
                    stream=name, error=repr(err))
    return found
