"""Status changes, run inside one serializable transaction by :class:`Registry`.

A version moves staging -> shadow -> production (DESIGN "Models"). The
production version it replaces is archived in the same transaction; the shadow
slot is never taken over silently (archive the current shadow first). Each
change writes its own promotions row, so the history alone replays every
status and tells a rollback where to go. Each change also queues a
``decile_models`` notification in the same transaction (``db.set_status``), so
a listener hears of it at commit and never of a refused or rolled-back change.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from decile.registry import db
from decile.registry.errors import PromotionRefused, RollbackRefused
from decile.registry.gate import GateConfig, check_gate, gate_record
from decile.registry.models import NEXT_STATUS, ModelVersion


def _target(version: ModelVersion, to: str | None, skip_shadow: bool) -> str:
    """The status to move to, or a refusal naming why the order forbids it."""
    if version.status not in NEXT_STATUS:
        hint = "use rollback" if version.status == "archived" else "it is already live"
        raise PromotionRefused(
            "INVALID_TRANSITION", f"{version.label} is {version.status}; {hint}",
            metric="status", value=version.status, limit=to,
        )
    if to is None:
        return NEXT_STATUS[version.status]
    if to not in ("shadow", "production"):
        raise ValueError(f"INVALID_STATUS: to={to!r} (shadow or production)")
    if to == version.status:
        raise PromotionRefused(
            "ALREADY_IN_STATUS", f"{version.label} is already {to}",
            metric="status", value=version.status, limit=to,
        )
    if to == "production" and version.status == "staging" and not skip_shadow:
        raise PromotionRefused(
            "SHADOW_REQUIRED",
            f"{version.label} is staging; promote it to shadow first (or skip_shadow=True)",
            metric="status", value=version.status, limit=to,
        )
    return to


async def promote(
    conn: asyncpg.Connection,
    ref: str | UUID,
    to: str | None,
    *,
    actor: str,
    reason: str,
    config: GateConfig,
    skip_shadow: bool = False,
) -> ModelVersion:
    """Gate, archive what the version displaces, move it; raises ``PromotionRefused``."""
    version = await db.fetch_version(conn, ref)
    target = _target(version, to, skip_shadow)
    production = await db.with_status(conn, version.family, "production")
    checks = check_gate(version, target, production, config)
    for check in checks:
        if not check.passed:
            raise check.refusal(version.label, target)
    if target == "shadow":
        shadow = await db.with_status(conn, version.family, "shadow")
        if shadow is not None:
            raise PromotionRefused(
                "SHADOW_OCCUPIED",
                f"{shadow.label} is in shadow; promote or archive it before {version.label}",
                metric="status", value=shadow.label, limit=None,
            )
    if target == "production" and production is not None:
        await db.set_status(
            conn, production, "archived", action="archive", actor=actor,
            reason=f"replaced by {version.label}",
        )
    return await db.set_status(
        conn, version, target, action="promote", actor=actor, reason=reason,
        gate=gate_record(checks, config),
    )


async def archive(
    conn: asyncpg.Connection, ref: str | UUID, *, actor: str, reason: str
) -> ModelVersion:
    """Retire a staging or shadow version (frees the shadow slot); production needs a rollback
    or a successor, so a family is never left without a model by accident."""
    version = await db.fetch_version(conn, ref)
    if version.status not in ("staging", "shadow"):
        hint = "roll back or promote a successor" if version.status == "production" else ""
        raise PromotionRefused(
            "INVALID_TRANSITION",
            f"{version.label} is {version.status}; only staging or shadow is archived"
            + (f" ({hint})" if hint else ""),
            metric="status", value=version.status, limit="archived",
        )
    return await db.set_status(
        conn, version, "archived", action="archive", actor=actor, reason=reason
    )


def previous_production(events: list[tuple[UUID, str]], current: UUID) -> UUID | None:
    """Replay ``(model_id, action)`` of every move into production, oldest first.

    A promotion pushes onto the stack, a rollback pops the version it left;
    what remains under the current production is where a rollback goes. So a
    second rollback goes further back instead of returning to the bad version.
    """
    stack: list[UUID] = []
    for model_id, action in events:
        if action == "rollback" and stack:
            stack.pop()
        if not stack or stack[-1] != model_id:
            stack.append(model_id)
    while stack and stack[-1] == current:
        stack.pop()
    return stack[-1] if stack else None


async def rollback(
    conn: asyncpg.Connection, family: str, *, actor: str, reason: str
) -> ModelVersion:
    """Archive the production version and restore the one it replaced."""
    current = await db.with_status(conn, family, "production")
    if current is None:
        raise RollbackRefused("NO_PRODUCTION", f"family={family} has no production version")
    rows = await conn.fetch(
        "SELECT model_id, action FROM promotions WHERE family = $1 AND to_status = 'production'"
        " ORDER BY id",
        family,
    )
    moves = [(UUID(str(r["model_id"])), str(r["action"])) for r in rows]
    prev_id = previous_production(moves, current.id)
    previous = None if prev_id is None else await db.fetch_version(conn, prev_id)
    if previous is None or previous.status != "archived":
        raise RollbackRefused(
            "NO_PREVIOUS_PRODUCTION",
            f"family={family}: {current.label} has no earlier production version to restore",
        )
    await db.set_status(
        conn, current, "archived", action="rollback", actor=actor, reason=reason
    )
    return await db.set_status(
        conn, previous, "production", action="rollback", actor=actor, reason=reason
    )
