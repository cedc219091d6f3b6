"""Serving refusals: a stable :class:`~decile.reasons.ReasonCode`, a message, the values.

The code is the contract (it goes into a ``ModelRejected`` / dead-letter
``Rejection`` unchanged); the message is for people and always starts with
the code, so a log line or a CLI can print ``str(err)`` as is.
"""

from __future__ import annotations

from typing import Final

from decile.events.base import Rejection, Scalar
from decile.reasons import ReasonCode

__all__ = ["BatchRefused", "ModelRefused", "ServingError"]

MAX_DETAIL: Final = 500


class ServingError(Exception):
    """Base class: ``code`` (a ReasonCode), ``message`` and ``values`` (what decided)."""

    gate: str = "serving"

    def __init__(
        self, code: ReasonCode, message: str, values: dict[str, Scalar] | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = ReasonCode(code)
        self.message = message
        self.values: dict[str, Scalar] = dict(values or {})

    def rejection(self, gate: str | None = None) -> Rejection:
        """The refusal as an event part (``ModelRejected.reason``, ``DeadLetter``...)."""
        return Rejection(
            gate=gate or self.gate,
            code=self.code,
            values=self.values,
            detail=self.message[:MAX_DETAIL],
        )


class ModelRefused(ServingError):
    """A model version that must not serve: unloadable, mismatched, or failing its goldens."""

    gate = "model_load"


class BatchRefused(ServingError):
    """A feature cross-section the loaded models cannot score (schema or shape mismatch)."""

    gate = "feature_schema"
