"""asyncpg plumbing for the registry: jsonb codec, row lookups, serializable retries."""

from __future__ import annotations

import asyncio
import json
import math
import random
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar
from uuid import UUID

import asyncpg

from decile.obs import get_logger
from decile.registry import notify
from decile.registry.errors import ConcurrentUpdate, ModelNotFound
from decile.registry.models import STATUSES, ModelVersion

T = TypeVar("T")
log = get_logger(__name__)


class StaleRead(Exception):
    """The row changed between read and write inside a transaction: retry on fresh state."""


RETRIES: Final = 8
# Unique indexes that a lost race on a status can hit instead of a serialization failure.
_STATUS_INDEXES: Final = frozenset({"model_versions_one_production", "model_versions_one_shadow"})


def _finite(v: Any) -> Any:
    """NaN/inf -> null, as metrics.json does: jsonb refuses them, the gate reads null as missing."""
    if isinstance(v, dict):
        return {str(k): _finite(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_finite(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def encode_json(value: Any) -> str:
    return json.dumps(_finite(value), allow_nan=False)


async def init_connection(conn: asyncpg.Connection) -> None:
    """jsonb in and out as Python objects."""
    await conn.set_type_codec(
        "jsonb", encoder=encode_json, decoder=json.loads, schema="pg_catalog"
    )


def _is_retryable(err: Exception) -> bool:
    if isinstance(err, StaleRead | asyncpg.SerializationError | asyncpg.DeadlockDetectedError):
        return True
    return (
        isinstance(err, asyncpg.UniqueViolationError)
        and getattr(err, "constraint_name", None) in _STATUS_INDEXES
    )


async def serializable(
    pool: asyncpg.Pool, fn: Callable[[asyncpg.Connection], Awaitable[T]], what: str
) -> T:
    """Run ``fn`` in one SERIALIZABLE transaction, retrying lost races with jittered backoff.

    ``fn`` re-reads everything on each attempt, so a retry decides on the state the
    winner left (e.g. the gate sees the new production version).
    """
    for attempt in range(RETRIES):
        try:
            async with pool.acquire() as conn, conn.transaction(isolation="serializable"):
                return await fn(conn)
        except (asyncpg.PostgresError, StaleRead) as err:
            if not _is_retryable(err):
                raise
            log.info("transaction retried", what=what, attempt=attempt + 1,
                     error=type(err).__name__)
            await asyncio.sleep(random.uniform(0, 0.01 * 2**attempt))
    raise ConcurrentUpdate("CONCURRENT_UPDATE", f"{what}: still conflicting after {RETRIES} tries")


_SELECT: Final = "SELECT * FROM model_versions"


def _as_uuid(value: str) -> UUID | None:
    try:
        return UUID(value)
    except ValueError:
        return None


async def fetch_version(conn: asyncpg.Connection, ref: str | UUID) -> ModelVersion:
    """By uuid, ``family@1.2.0``, or ``family@<status>`` (production, shadow, staging)."""
    row = None
    if isinstance(ref, UUID) or (uid := _as_uuid(ref)) is not None:
        row = await conn.fetchrow(f"{_SELECT} WHERE id = $1", ref if isinstance(ref, UUID) else uid)
    elif "@" in ref:
        family, _, version = ref.partition("@")
        if version in STATUSES and version != "archived":
            row = await conn.fetchrow(
                f"{_SELECT} WHERE family = $1 AND status = $2", family, version
            )
        else:
            row = await conn.fetchrow(
                f"{_SELECT} WHERE family = $1 AND version = $2", family, version
            )
    if row is None:
        raise ModelNotFound(ref)
    return ModelVersion.from_row(row)


async def with_status(conn: asyncpg.Connection, family: str, status: str) -> ModelVersion | None:
    row = await conn.fetchrow(f"{_SELECT} WHERE family = $1 AND status = $2", family, status)
    return None if row is None else ModelVersion.from_row(row)


async def set_status(
    conn: asyncpg.Connection,
    version: ModelVersion,
    to: str,
    *,
    action: str,
    actor: str,
    reason: str,
    gate: dict[str, Any] | None = None,
) -> ModelVersion:
    """Move one version, write its promotions row and queue its ``decile_models``
    notification, all in the caller's transaction (so listeners hear only of commits)."""
    row = await conn.fetchrow(
        "UPDATE model_versions SET status = $2 WHERE id = $1 AND status = $3 RETURNING *",
        version.id, to, version.status,
    )
    if row is None:  # moved under us: let the transaction retry on fresh state
        raise StaleRead(f"{version.label} changed status")
    await conn.execute(
        "INSERT INTO promotions (model_id, family, from_status, to_status, action, actor,"
        " reason, gate) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        version.id, version.family, version.status, to, action, actor, reason, gate,
    )
    moved = ModelVersion.from_row(row)
    await notify.notify_change(conn, moved, action=action, from_status=version.status)
    return moved
