"""What to announce for a live version, and under which id: pure, no I/O, no clock.

An activation is identified by the promotion that put the version in its
status (the registry's ``promotions`` row): the event id is derived from
(model id, status, promotion id) and timestamped at the promotion. The same
activation announced twice (a restart, a resync racing its notification)
therefore carries the same ``Nats-Msg-Id`` and JetStream drops the copy
within its duplicate window; a new promotion of the same version (a
rollback restoring it) is a new row, hence a new event that is delivered.

``previous_version`` is read from the same history (the version that held
the status before that promotion), not from process memory, so it survives a
restart and two announcements of one activation are equal.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final
from uuid import UUID

from decile import ids
from decile.events import ModelActivated, ModelRejected
from decile.events.base import Rejection
from decile.registry import ModelVersion, Promotion

LIVE: Final = ("production", "shadow")  # the statuses a serving process loads


def promotion_into(history: Sequence[Promotion], model_id: UUID, status: str) -> Promotion | None:
    """The last status change that moved ``model_id`` into ``status`` (history oldest first)."""
    return next(
        (p for p in reversed(history) if p.model_id == model_id and p.to_status == status), None
    )


def previous_holder(history: Sequence[Promotion], promotion: Promotion | None) -> str | None:
    """The version that held ``promotion.to_status`` before it (None: the first one)."""
    if promotion is None:
        return None
    before = (p for p in reversed(history) if p.id < promotion.id)
    return next(
        (p.version for p in before
         if p.to_status == promotion.to_status and p.model_id != promotion.model_id),
        None,
    )


def _ms(version: ModelVersion, promotion: Promotion | None) -> int:
    return int(_at(version, promotion).timestamp() * 1000)


def event_id(
    kind: str, version: ModelVersion, status: str, promotion: Promotion | None, *extra: object
) -> str:
    """Deterministic UUIDv7 at the promotion's time: same activation, same id."""
    key = promotion.id if promotion is not None else "no-promotion"
    return ids.stable_id(_ms(version, promotion), kind, version.id, status, key, *extra)


def _at(version: ModelVersion, promotion: Promotion | None) -> datetime:
    """The event time: the promotion's (the same for every announcement of it)."""
    return promotion.created_at if promotion is not None else version.created_at


def _trace(event: str) -> str:
    """A trace id derived from the event id, so a re-announcement is the same message."""
    return hashlib.sha256(event.encode()).hexdigest()[:32]


def activated(
    version: ModelVersion,
    status: str,
    history: Sequence[Promotion],
    *,
    producer: str,
) -> ModelActivated:
    promotion = promotion_into(history, version.id, status)
    eid = event_id(ModelActivated.type_name, version, status, promotion)
    return ModelActivated.model_validate({
        "id": eid,
        "trace_id": _trace(eid),
        "ts_event": _at(version, promotion),
        "producer": producer,
        "family": version.family,
        "version": version.version,
        "status": status,
        "artifact_uri": version.artifact_uri,
        "sha256": version.sha256,
        "feature_schema": version.schema_version,
        "previous_version": previous_holder(history, promotion),
    })


def rejected(
    version: ModelVersion,
    status: str,
    history: Sequence[Promotion],
    reason: Rejection,
    *,
    producer: str,
) -> ModelRejected:
    promotion = promotion_into(history, version.id, status)
    eid = event_id(ModelRejected.type_name, version, status, promotion, reason.code.value)
    return ModelRejected.model_validate({
        "id": eid,
        "trace_id": _trace(eid),
        "ts_event": _at(version, promotion),
        "producer": producer,
        "family": version.family,
        "version": version.version,
        "reason": reason,
    })


@dataclass(frozen=True)
class Active:
    """The version announced for one (family, status) slot."""

    id: UUID
    sha256: str
    version: str


@dataclass
class Memory:
    """What this process announced: the current version per (family, status), and the
    refusals already published (validation still re-runs on each check, so a repaired
    artifact activates at the next resync). Empty after a restart, on purpose: the
    first resync announces everything again (same ids, deduplicated by the server
    within its window; a serving process treats a repeat as a no-op)."""

    active: dict[tuple[str, str], Active] = field(default_factory=dict)
    refused: set[str] = field(default_factory=set)  # ModelRejected ids published

    def is_current(self, version: ModelVersion, status: str) -> bool:
        held = self.active.get((version.family, status))
        return held is not None and (held.id, held.sha256) == (version.id, version.sha256)

    def activate(self, version: ModelVersion, status: str) -> list[tuple[str, Active]]:
        """Record ``version`` in its slot; returns the (status, entry) pairs it ends.

        A version promoted from shadow to production leaves the shadow slot.
        """
        ended: list[tuple[str, Active]] = []
        for other in LIVE:
            held = self.active.get((version.family, other))
            replaced = other == status and held is not None and held.id != version.id
            moved = other != status and held is not None and held.id == version.id
            if held is not None and (replaced or moved):
                ended.append((other, held))
                del self.active[(version.family, other)]
        self.active[(version.family, status)] = Active(version.id, version.sha256, version.version)
        return ended

    def vacate(self, family: str, status: str) -> Active | None:
        """The registry has no version in this slot any more."""
        return self.active.pop((family, status), None)
