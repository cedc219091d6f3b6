"""Settings of the inference service (``DECILE_INFERENCE__*``, ``DECILE_ARTIFACTS__*``)."""

from __future__ import annotations

import socket
from typing import Annotated

from pydantic import Field

from decile.config import Section, ServiceSettings
from decile.registry import ArtifactSettings


class InferenceSection(Section):
    """``DECILE_INFERENCE__*``. Defaults: the 5m cycle; the score floor from the entry
    model's training (``metrics.json``'s ``score_floor``) unless set; the top 10% of each
    cycle; a cycle missing more than 20% of the previous cycle's symbols is skipped; a
    model older than twice its 7-day cadence is refused; PSI over the last 5,000
    proposals, checked every 12 cycles, at most one retrain request per family an hour;
    shadow versions scored beside production; the registry re-read every 60 s."""

    tf: str = "5m"
    score_floor: Annotated[float, Field(ge=0, le=1)] | None = None
    top_fraction: Annotated[float, Field(gt=0, le=1)] = 0.1
    max_missing_fraction: Annotated[float, Field(ge=0, le=1)] = 0.2
    cadence_s: Annotated[float, Field(gt=0)] = 7 * 86_400.0
    drift_window: Annotated[int, Field(ge=100)] = 5_000
    drift_every: Annotated[int, Field(ge=1)] = 12
    retrain_cooldown_s: Annotated[float, Field(ge=0)] = 3_600.0
    shadow: bool = True
    reconcile_s: Annotated[float, Field(gt=0)] = 60.0
    instance: str = Field(default_factory=socket.gethostname)


class InferenceSettings(ServiceSettings):
    service: str = "inference"
    artifacts: ArtifactSettings = ArtifactSettings()
    inference: InferenceSection = InferenceSection()
