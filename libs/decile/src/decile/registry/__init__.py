"""Model registry: versions of each model family, their artifacts, and their lifecycle.

A trained version is registered as staging with its metrics.json and artifact
references, then moves staging -> shadow -> production through a gate (floors
plus a paired evaluation against production); every status change is a
promotions row, and a rollback restores the previous production in one
transaction. Artifacts live on disk or in a JetStream Object Store bucket and
are verified against their sha256 before use. Every status change is also a
``decile_models`` NOTIFY sent at commit (:func:`watch_changes` listens).
"""

from decile.registry.artifacts import (
    ArtifactRef,
    ArtifactSettings,
    ArtifactStore,
    LocalArtifacts,
    fetch_verified,
    open_artifacts,
)
from decile.registry.errors import (
    ArtifactCorrupt,
    ArtifactNotFound,
    ConcurrentUpdate,
    ModelNotFound,
    PromotionRefused,
    RegistryError,
    RollbackRefused,
    TrainingInProgress,
)
from decile.registry.gate import GateCheck, GateConfig, check_gate
from decile.registry.models import FAMILIES, STATUSES, FailedAttempt, ModelVersion, Promotion
from decile.registry.notify import CHANNEL, watch_changes
from decile.registry.object_store import ObjectStoreArtifacts
from decile.registry.registry import Registry

__all__ = [
    "CHANNEL",
    "FAMILIES",
    "STATUSES",
    "ArtifactCorrupt",
    "ArtifactNotFound",
    "ArtifactRef",
    "ArtifactSettings",
    "ArtifactStore",
    "ConcurrentUpdate",
    "FailedAttempt",
    "GateCheck",
    "GateConfig",
    "LocalArtifacts",
    "ModelNotFound",
    "ModelVersion",
    "ObjectStoreArtifacts",
    "Promotion",
    "PromotionRefused",
    "Registry",
    "RegistryError",
    "RollbackRefused",
    "TrainingInProgress",
    "check_gate",
    "fetch_verified",
    "open_artifacts",
    "watch_changes",
]
