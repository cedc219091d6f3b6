"""Model lifecycle events."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from decile.events.base import Event, Rejection, Scalar

Family = Literal["entry", "risk", "rr", "offset", "confirm"]


class ModelActivated(Event):
    type_name: ClassVar[str] = "ModelActivated"
    type: Literal["ModelActivated"] = "ModelActivated"
    schema_version: Literal[1] = 1
    family: Family
    version: Annotated[str, Field(min_length=1, max_length=64)]
    status: Literal["production", "shadow"]
    artifact_uri: str
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    feature_schema: str
    previous_version: str | None = None


class ModelRejected(Event):
    type_name: ClassVar[str] = "ModelRejected"
    type: Literal["ModelRejected"] = "ModelRejected"
    schema_version: Literal[1] = 1
    family: Family
    version: str
    reason: Rejection


class RetrainRequested(Event):
    type_name: ClassVar[str] = "RetrainRequested"
    type: Literal["RetrainRequested"] = "RetrainRequested"
    schema_version: Literal[1] = 1
    family: Family
    reason: Rejection
    values: dict[str, Scalar] = Field(default_factory=dict)
