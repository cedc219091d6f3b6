from typing import Annotated, Self

from pydantic import Field, field_validator, model_validator

from decile.config import Section, ServiceSettings
from decile.registry import ArtifactSettings
from decile_model_watcher.validation import WATCHED_FAMILIES


class WatcherSection(Section):
    """``DECILE_WATCHER__*``

    ``families``: the families whose production and shadow versions are
    validated and announced (default and allowed: entry, risk, rr, offset,
    validated against the serving feature row, and confirm, against the flow
    row of its window). ``resync_s``: a
    full re-read of the registry every 300 s, beside the one after every
    (re)connect, as a backstop for anything a notification did not carry.
    ``retry_min_s``/``retry_max_s``: backoff (doubling) of the re-check after a
    transient failure (database, artifact store, NATS), 0.5 s up to 30 s.
    """

    families: tuple[str, ...] = WATCHED_FAMILIES
    resync_s: Annotated[float, Field(ge=1, le=86_400)] = 300.0
    retry_min_s: Annotated[float, Field(gt=0, le=60)] = 0.5
    retry_max_s: Annotated[float, Field(gt=0, le=3_600)] = 30.0

    @field_validator("families")
    @classmethod
    def _known(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [f for f in v if f not in WATCHED_FAMILIES]
        if unknown or not v:
            raise ValueError(
                f"unknown or no families {unknown}; watched: {', '.join(WATCHED_FAMILIES)}"
            )
        return tuple(dict.fromkeys(v))

    @model_validator(mode="after")
    def _backoff(self) -> Self:
        if self.retry_max_s < self.retry_min_s:
            raise ValueError("retry_max_s must be >= retry_min_s")
        return self


class ModelWatcherSettings(ServiceSettings):
    service: str = "model-watcher"
    artifacts: ArtifactSettings = ArtifactSettings()  # DECILE_ARTIFACTS__BACKEND/ROOT/BUCKET
    watcher: WatcherSection = WatcherSection()
