"""Latest feature vector per symbol in Redis: ``<prefix>vec:<SYMBOL>:<TF>``.

A hash with ``v`` (float32 little-endian, schema order), ``schema`` (feature
schema version), ``bar_time`` (ms, bar open time) and ``n`` (feature count).
Subscribers check ``schema`` before reading ``v``. One pipeline per cycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from redis.asyncio import Redis


def key(prefix: str, symbol: str, tf: str) -> str:
    return f"{prefix}vec:{symbol}:{tf}"


@dataclass(frozen=True, slots=True)
class Vector:
    values: np.ndarray  # float32
    schema: str
    bar_time_ms: int


async def write_vectors(
    redis: Redis, prefix: str, tf: str, symbols: Sequence[str], matrix: np.ndarray, schema: str,
    bar_time_ms: int,
) -> None:
    packed = np.ascontiguousarray(matrix, dtype="<f4")
    n = str(packed.shape[1])
    pipe = redis.pipeline(transaction=False)
    for sym, row in zip(symbols, packed, strict=True):
        pipe.hset(key(prefix, sym, tf), mapping={
            "v": row.tobytes(), "schema": schema, "bar_time": str(bar_time_ms), "n": n})
    await pipe.execute()


async def read_vector(redis: Redis, prefix: str, symbol: str, tf: str) -> Vector | None:
    raw: dict[bytes, bytes] = await redis.hgetall(key(prefix, symbol, tf))  # type: ignore[misc,assignment]
    if not raw:
        return None
    return Vector(
        values=np.frombuffer(raw[b"v"], dtype="<f4"),
        schema=raw[b"schema"].decode(),
        bar_time_ms=int(raw[b"bar_time"]),
    )
