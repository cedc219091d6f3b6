"""Model age and staleness: a model older than twice its retraining cadence is stale.

DESIGN: such a model triggers a retrain and is refused for new decisions
(risk gate "model staleness", ``MODEL_STALE``). Age counts from the version's
registration (``created_at``: the trainer registers at the end of its run),
which a :class:`~decile.registry.ModelVersion` and a
:class:`~decile.serving.loader.LoadedModel` both carry. ``now`` is passed in,
never read here, so a replay judges staleness on its own clock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Protocol

from decile.events.base import Rejection
from decile.reasons import ReasonCode

__all__ = ["STALE_FACTOR", "is_stale", "model_age_s", "stale_rejection"]

STALE_FACTOR: Final = 2.0


class _Dated(Protocol):
    @property
    def created_at(self) -> datetime: ...

    @property
    def family(self) -> str: ...

    @property
    def version(self) -> str: ...


def model_age_s(version: _Dated, now: datetime) -> float:
    """Seconds since the version was registered (negative if ``now`` is before that)."""
    if now.tzinfo is None or version.created_at.tzinfo is None:
        raise ValueError("model_age_s needs timezone-aware datetimes (now and created_at)")
    return (now - version.created_at).total_seconds()


def is_stale(version: _Dated, cadence_s: float, now: datetime) -> bool:
    """True when the version is older than ``STALE_FACTOR`` (2) x its cadence."""
    if cadence_s <= 0:
        raise ValueError(f"cadence_s must be > 0, got {cadence_s}")
    return model_age_s(version, now) > STALE_FACTOR * cadence_s


def stale_rejection(version: _Dated, cadence_s: float, now: datetime) -> Rejection | None:
    """``MODEL_STALE`` with the age and the limit when stale, else None."""
    if not is_stale(version, cadence_s, now):
        return None
    age = model_age_s(version, now)
    return Rejection(
        gate="model_staleness",
        code=ReasonCode.MODEL_STALE,
        values={"family": version.family, "version": version.version,
                "age_s": round(age, 3), "limit_s": STALE_FACTOR * cadence_s},
        detail=f"{version.family}@{version.version} is {age / 3600:.1f} h old; "
        f"limit {STALE_FACTOR:g} x cadence = {STALE_FACTOR * cadence_s / 3600:.1f} h",
    )
