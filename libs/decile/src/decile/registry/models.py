"""Registry rows as frozen dataclasses, and the version numbering rule."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from decile.registry.artifacts import ArtifactRef

FAMILIES: Final = ("entry", "risk", "rr", "offset", "confirm")
BINARY_FAMILIES: Final = frozenset({"entry", "confirm"})
QUANTILE_FAMILIES: Final = frozenset({"risk", "rr", "offset"})
STATUSES: Final = ("staging", "shadow", "production", "archived")
# The order a version moves in (DESIGN "Models"); archived is reached by replacement only.
NEXT_STATUS: Final = {"staging": "shadow", "shadow": "production"}


def check_family(family: str) -> str:
    if family not in FAMILIES:
        raise ValueError(f"UNKNOWN_FAMILY: family={family!r}, known={','.join(FAMILIES)}")
    return family


def parse_version(version: str) -> tuple[int, int, int]:
    major, minor, patch = (int(p) for p in version.split("."))
    return major, minor, patch


def next_version(latest: str | None, latest_schema: str | None, schema_version: str) -> str:
    """1.0.0 first; same feature schema -> minor+1; a new schema -> major+1.

    A schema change breaks every consumer of the model's input, hence the major.
    """
    if latest is None:
        return "1.0.0"
    major, minor, _ = parse_version(latest)
    if latest_schema == schema_version:
        return f"{major}.{minor + 1}.0"
    return f"{major + 1}.0.0"


def _uuid(value: Any) -> UUID:
    return value if type(value) is UUID else UUID(str(value))


@dataclass(frozen=True)
class ModelVersion:
    """One registered version (a ``model_versions`` row)."""

    id: UUID
    family: str
    version: str
    status: str
    parent_id: UUID | None
    schema_version: str
    metrics: dict[str, Any]
    artifact_uri: str
    sha256: str
    size_bytes: int
    artifacts: dict[str, ArtifactRef]
    data_fingerprint: str
    created_at: datetime

    @property
    def label(self) -> str:
        return f"{self.family}@{self.version}"

    @property
    def size(self) -> int:
        """Bytes of model.onnx (``size_bytes``), named as on :class:`ArtifactRef`."""
        return self.size_bytes

    @property
    def artifact_ref(self) -> ArtifactRef:
        """The model.onnx reference, ready for :func:`fetch_verified`."""
        return ArtifactRef(self.artifact_uri, self.sha256, self.size_bytes)

    @classmethod
    def from_row(cls, r: Mapping[str, Any]) -> ModelVersion:
        return cls(
            id=_uuid(r["id"]),
            family=r["family"],
            version=r["version"],
            status=r["status"],
            parent_id=_uuid(r["parent_id"]) if r["parent_id"] is not None else None,
            schema_version=r["schema_version"],
            metrics=r["metrics"],
            artifact_uri=r["artifact_uri"],
            sha256=r["sha256"],
            size_bytes=r["size_bytes"],
            artifacts={k: ArtifactRef(**v) for k, v in r["artifacts"].items()},
            data_fingerprint=r["data_fingerprint"],
            created_at=r["created_at"],
        )


@dataclass(frozen=True)
class Promotion:
    """One status change (a ``promotions`` row) with the version it names."""

    id: int
    model_id: UUID
    family: str
    version: str
    from_status: str
    to_status: str
    action: str
    actor: str
    reason: str
    gate: dict[str, Any] | None
    created_at: datetime

    @classmethod
    def from_row(cls, r: Mapping[str, Any]) -> Promotion:
        return cls(
            id=r["id"],
            model_id=_uuid(r["model_id"]),
            family=r["family"],
            version=r["version"],
            from_status=r["from_status"],
            to_status=r["to_status"],
            action=r["action"],
            actor=r["actor"],
            reason=r["reason"],
            gate=r["gate"],
            created_at=r["created_at"],
        )


@dataclass(frozen=True)
class FailedAttempt:
    """A training run that stopped, at which stage and why (a ``failed_attempts`` row)."""

    id: UUID
    family: str
    stage: str
    code: str
    message: str
    partial_metrics: dict[str, Any] | None
    input_fingerprint: str
    created_at: datetime

    @classmethod
    def from_row(cls, r: Mapping[str, Any]) -> FailedAttempt:
        return cls(
            id=_uuid(r["id"]),
            family=r["family"],
            stage=r["stage"],
            code=r["code"],
            message=r["message"],
            partial_metrics=r["partial_metrics"],
            input_fingerprint=r["input_fingerprint"],
            created_at=r["created_at"],
        )
