"""Time-ordered event ids (UUIDv7, RFC 9562).

Ids sort by creation time, so a table keyed on them stays append-mostly and a
log read in id order is in time order. ``derive`` gives a child event a
deterministic id from its parent: a redelivered input yields the same output id,
which the server's ``Nats-Msg-Id`` dedup and every consumer's id check drop.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_seq = 0


def _build(ms: int, rand_a: int, rand_b: int) -> uuid.UUID:
    value = (ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76  # version 7
    value |= (rand_a & 0xFFF) << 64
    value |= 0b10 << 62  # RFC 4122 variant
    value |= rand_b & 0x3FFF_FFFF_FFFF_FFFF
    return uuid.UUID(int=value)


def new_id(now_ms: int | None = None) -> str:
    """A new UUIDv7; monotonic within this process even within one millisecond."""
    global _last_ms, _seq
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    with _lock:
        if ms <= _last_ms:
            ms = _last_ms
            _seq += 1
            if _seq > 0xFFF:  # 4096 ids in one ms: borrow the next millisecond
                ms += 1
                _seq = 0
        else:
            _seq = int.from_bytes(os.urandom(2), "big") & 0x3FF
        _last_ms = ms
        seq = _seq
    return str(_build(ms, seq, int.from_bytes(os.urandom(8), "big")))


def derive(parent_id: str, *parts: object) -> str:
    """Deterministic UUIDv7 for an event caused by ``parent_id``.

    Keeps the parent's timestamp (so order is preserved) and fills the random
    bits from a hash of the parent and ``parts``.
    """
    ms = id_time_ms(parent_id)
    digest = hashlib.sha256("|".join([parent_id, *map(str, parts)]).encode()).digest()
    return str(_build(ms, int.from_bytes(digest[:2], "big"), int.from_bytes(digest[2:10], "big")))


def stable_id(ts_ms: int, *parts: object) -> str:
    """Deterministic UUIDv7 from a time and a key (e.g. a bar cycle: tf, bar time, shard)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    rand_a, rand_b = int.from_bytes(digest[:2], "big"), int.from_bytes(digest[2:10], "big")
    return str(_build(ts_ms, rand_a, rand_b))


def id_time_ms(event_id: str) -> int:
    """Milliseconds since the epoch encoded in a UUIDv7."""
    return uuid.UUID(event_id).int >> 80


def is_uuid7(value: str) -> bool:
    """True for a canonical (lower-case, hyphenated) UUIDv7 string only.

    Upper case, braces or ``urn:uuid:`` would name the same UUID under a
    different string, and ids are compared and deduplicated as strings.
    """
    try:
        u = uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return False
    return u.version == 7 and str(u) == value
