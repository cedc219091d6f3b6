"""Glue: a registry change (or a slot to re-check) in, a validated announcement out.

Each function re-reads the registry, validates the version's actual bytes
with :func:`decile.serving.load_version` against its family's input (and the
extra rules of :mod:`.validation`), publishes ``model.activated`` or
``model.rejected`` and counts it. Transient failures (database, artifact
store, NATS) propagate: the watch loop logs, counts and retries them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

from decile import obs
from decile.bus import Bus
from decile.registry import ArtifactStore, ModelNotFound, ModelVersion, Registry
from decile.serving import ModelRefused, load_version
from decile_model_watcher import metrics
from decile_model_watcher.activation import LIVE, Memory, activated, rejected
from decile_model_watcher.validation import (
    CONFIRM,
    check_confirm_flow,
    check_probabilities,
    model_input,
)

log = obs.get_logger(__name__)

Outcome = Literal["activated", "rejected", "current", "ignored", "superseded", "vacant"]


@dataclass
class Deps:
    registry: Registry
    store: ArtifactStore
    bus: Bus
    families: tuple[str, ...]
    memory: Memory


async def on_change(change: dict[str, Any], deps: Deps) -> Outcome:
    """One ``decile_models`` notification: announce the version if it is (still) live.

    Archived ones are ignored (a rollback's restored version arrives as its own
    production notification); a version that moved on since the notification
    is left to the notification of its new status.
    """
    status, family = change.get("status"), change.get("family")
    if status not in LIVE or family not in deps.families:
        return "ignored"
    try:
        version = await deps.registry.get(UUID(str(change.get("id"))))
    except (ModelNotFound, ValueError):
        log.warning("registry notification names no version", change=change)
        return "ignored"
    if version.status != status:
        return "superseded"
    return await activate(version, status, deps)


async def check_slot(family: str, status: str, deps: Deps) -> Outcome:
    """Resync one (family, status): announce the registry's holder unless already announced."""
    version = await (
        deps.registry.production(family) if status == "production"
        else deps.registry.shadow(family)
    )
    if version is None:
        gone = deps.memory.vacate(family, status)
        if gone is not None:
            metrics.SERVING.labels(family, status, gone.version).set(0)
            log.info("model slot vacated", family=family, status=status, version=gone.version)
        return "vacant"
    return await activate(version, status, deps)


async def activate(version: ModelVersion, status: str, deps: Deps) -> Outcome:
    """Validate and announce ``version`` as ``status``; a refusal announces the reason."""
    if deps.memory.is_current(version, status):
        return "current"
    history = await deps.registry.history(version.family)
    try:
        await validate(version, deps.store)
    except ModelRefused as err:
        refusal = rejected(version, status, history, err.rejection(), producer=deps.bus.service)
        if refusal.id not in deps.memory.refused:
            ack = await deps.bus.publish(refusal)
            deps.memory.refused.add(refusal.id)
            metrics.REJECTIONS.labels(version.family, err.code.value).inc()
            log.warning("model rejected", model=version.label, id=str(version.id),
                        status=status, code=err.code.value, detail=err.message[:300],
                        event_id=refusal.id, duplicate=bool(ack.duplicate))
        return "rejected"
    event = activated(version, status, history, producer=deps.bus.service)
    ack = await deps.bus.publish(event)
    for ended_status, ended in deps.memory.activate(version, status):
        metrics.SERVING.labels(version.family, ended_status, ended.version).set(0)
    metrics.SERVING.labels(version.family, status, version.version).set(1)
    metrics.ACTIVATIONS.labels(version.family, status).inc()
    log.info("model activated", model=version.label, id=str(version.id), status=status,
             sha256=version.sha256, previous=event.previous_version, event_id=event.id,
             duplicate=bool(ack.duplicate))
    return "activated"


async def validate(version: ModelVersion, store: ArtifactStore) -> None:
    """Every check for ``version``'s family; ``ModelRefused`` names the first that fails."""
    expected = model_input(version.family)
    model = await load_version(
        version, store, expected.features,
        expected_schema_version=expected.schema_version,
        expected_strategies=expected.strategies,
    )
    check_probabilities(version, model)
    if version.family == CONFIRM:
        check_confirm_flow(version)
