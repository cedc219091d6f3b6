"""The model registry: versions, promotions, rollbacks, failed attempts, in PostgreSQL.

Every status change is one serializable transaction, retried when it loses a
race; the loser re-decides on the winner's state (so two candidates promoted
at once end with exactly one production and a history that replays).
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Literal
from uuid import UUID

import asyncpg

from decile.ids import new_id
from decile.obs import get_logger
from decile.registry import db, lifecycle, locks, notify
from decile.registry.artifacts import ArtifactRef
from decile.registry.errors import ModelNotFound, PromotionRefused
from decile.registry.gate import GateConfig
from decile.registry.models import (
    FailedAttempt,
    ModelVersion,
    Promotion,
    check_family,
    next_version,
)
from decile.store import migrate

log = get_logger(__name__)

_LATEST = (
    "SELECT version, schema_version FROM model_versions WHERE family = $1"
    " ORDER BY string_to_array(version, '.')::int[] DESC LIMIT 1"
)
_HISTORY = (
    "SELECT p.*, v.version FROM promotions p JOIN model_versions v ON v.id = p.model_id"
)


class _Connecting:
    """``await Registry.connect(dsn)`` or ``async with Registry.connect(dsn) as reg``."""

    def __init__(self, dsn: str, gate: GateConfig | None, pool_max: int) -> None:
        self._args = (dsn, gate, pool_max)
        self._registry: Registry | None = None

    def __await__(self) -> Generator[Any, None, Registry]:
        return Registry._open(*self._args).__await__()

    async def __aenter__(self) -> Registry:
        self._registry = await Registry._open(*self._args)
        return self._registry

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._registry is not None:
            await self._registry.close()


class Registry:
    """Model versions and their lifecycle; one pool, migrations applied on connect."""

    def __init__(self, pool: asyncpg.Pool, dsn: str, gate: GateConfig | None = None) -> None:
        self._pool = pool
        self._dsn = dsn
        self.gate = gate or GateConfig()

    @classmethod
    def connect(
        cls, dsn: str, *, gate: GateConfig | None = None, pool_max: int = 4
    ) -> _Connecting:
        """Open a pool and apply pending migrations (awaitable and async context manager)."""
        return _Connecting(dsn, gate, pool_max)

    @classmethod
    async def _open(cls, dsn: str, gate: GateConfig | None, pool_max: int) -> Registry:
        pool = await asyncpg.create_pool(
            dsn, min_size=1, max_size=pool_max, init=db.init_connection
        )
        try:
            async with pool.acquire() as conn:
                await migrate.apply(conn)
        except BaseException:
            await pool.close()
            raise
        return cls(pool, dsn, gate)

    async def close(self) -> None:
        await self._pool.close()

    async def __aenter__(self) -> Registry:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # ----------------------------------------------------------------- versions

    async def register(
        self,
        family: str,
        *,
        schema_version: str,
        metrics: dict[str, Any],
        artifact: ArtifactRef,
        artifacts: dict[str, ArtifactRef],
        data_fingerprint: str,
        parent_id: UUID | None = None,
    ) -> ModelVersion:
        """A new staging version, numbered under a per-family lock: concurrent ones never clash."""
        check_family(family)
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                f"decile.register:{family}",
            )
            latest = await conn.fetchrow(_LATEST, family)
            version = next_version(
                latest and latest["version"], latest and latest["schema_version"], schema_version
            )
            try:
                row = await conn.fetchrow(
                    "INSERT INTO model_versions (id, family, version, status, parent_id,"
                    " schema_version, metrics, artifact_uri, sha256, size_bytes, artifacts,"
                    " data_fingerprint) VALUES ($1, $2, $3, 'staging', $4, $5, $6, $7, $8, $9,"
                    " $10, $11) RETURNING *",
                    UUID(new_id()), family, version, parent_id, schema_version, metrics,
                    artifact.uri, artifact.sha256, artifact.size,
                    {k: v.to_json() for k, v in artifacts.items()}, data_fingerprint,
                )
            except asyncpg.ForeignKeyViolationError:
                raise ModelNotFound(parent_id, "PARENT_NOT_FOUND") from None
        registered = ModelVersion.from_row(row)
        log.info("model registered", model=registered.label, id=str(registered.id))
        return registered

    async def get(self, ref: str | UUID) -> ModelVersion:
        """By uuid, ``family@1.2.0`` or ``family@production``/``@shadow``; else ModelNotFound."""
        async with self._pool.acquire() as conn:
            return await db.fetch_version(conn, ref)

    async def production(self, family: str) -> ModelVersion | None:
        async with self._pool.acquire() as conn:
            return await db.with_status(conn, family, "production")

    async def shadow(self, family: str) -> ModelVersion | None:
        async with self._pool.acquire() as conn:
            return await db.with_status(conn, family, "shadow")

    # ---------------------------------------------------------------- lifecycle

    async def promote(
        self,
        ref: str | UUID,
        to: Literal["shadow", "production"] | None = None,
        *,
        actor: str,
        reason: str = "",
        skip_shadow: bool = False,
    ) -> ModelVersion:
        """Next status (or ``to``) after the gate; raises ``PromotionRefused``, nothing changed."""
        try:
            promoted = await db.serializable(
                self._pool,
                lambda conn: lifecycle.promote(
                    conn, ref, to, actor=actor, reason=reason, config=self.gate,
                    skip_shadow=skip_shadow,
                ),
                f"promote {ref}",
            )
        except PromotionRefused as err:
            log.warning("promotion refused", ref=str(ref), to=to, actor=actor, error=str(err))
            raise
        log.info("model promoted", model=promoted.label, status=promoted.status, actor=actor)
        return promoted

    async def rollback(self, family: str, *, actor: str, reason: str = "") -> ModelVersion:
        """Archive production and restore the version it replaced; returns the restored one."""
        restored = await db.serializable(
            self._pool,
            lambda conn: lifecycle.rollback(conn, family, actor=actor, reason=reason),
            f"rollback {family}",
        )
        log.warning("model rolled back", model=restored.label, actor=actor, reason=reason)
        return restored

    async def archive(self, ref: str | UUID, *, actor: str, reason: str = "") -> ModelVersion:
        """Retire a staging or shadow version; refuses production (``INVALID_TRANSITION``)."""
        archived = await db.serializable(
            self._pool,
            lambda conn: lifecycle.archive(conn, ref, actor=actor, reason=reason),
            f"archive {ref}",
        )
        log.info("model archived", model=archived.label, actor=actor, reason=reason)
        return archived

    def watch(
        self, *, on_connect: Callable[[], Awaitable[None]] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Every committed status change as it happens (:func:`notify.watch_changes`).

        ``on_connect`` runs after each (re)connect once listening: re-read the
        registry there, since changes made while disconnected are not replayed.
        """
        return notify.watch_changes(self._dsn, on_connect=on_connect)

    async def history(self, family: str | None = None) -> builtins.list[Promotion]:
        """Every status change, oldest first."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                f"{_HISTORY} WHERE $1::text IS NULL OR p.family = $1 ORDER BY p.id", family
            )
        return [Promotion.from_row(r) for r in rows]

    # ------------------------------------------------------------ failures, lock

    async def record_failure(
        self,
        family: str,
        *,
        stage: str,
        code: str,
        message: str,
        partial_metrics: dict[str, Any] | None = None,
        input_fingerprint: str = "",
    ) -> FailedAttempt:
        """Keep a failed training attempt: what stage, which code, what it had measured."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                "INSERT INTO failed_attempts (id, family, stage, code, message, partial_metrics,"
                " input_fingerprint) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *",
                UUID(new_id()), family, stage, code, message, partial_metrics, input_fingerprint,
            )
        log.warning("training attempt failed", family=family, stage=stage, code=code)
        return FailedAttempt.from_row(row)

    async def failures(self, family: str | None = None) -> builtins.list[FailedAttempt]:
        """Failed attempts, newest first."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT * FROM failed_attempts WHERE $1::text IS NULL OR family = $1"
                " ORDER BY created_at DESC, id DESC",
                family,
            )
        return [FailedAttempt.from_row(r) for r in rows]

    def training_lock(self, family: str) -> AbstractAsyncContextManager[None]:
        """Hold the family's training lock; ``TrainingInProgress`` at once if someone has it."""
        return locks.training_lock(self._dsn, family)

    async def list(
        self, family: str | None = None, status: str | None = None
    ) -> builtins.list[ModelVersion]:
        """Versions, newest first, optionally of one family and/or one status."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT * FROM model_versions WHERE ($1::text IS NULL OR family = $1)"
                " AND ($2::text IS NULL OR status = $2) ORDER BY created_at DESC, id DESC",
                family, status,
            )
        return [ModelVersion.from_row(r) for r in rows]

