"""Operational events."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from decile.events.base import Event
from decile.reasons import ReasonCode


class DeadLetter(Event):
    """A message a service could not decode or process, kept whole for replay.

    ``payload_b64`` is the original body untouched, so nothing is lost: an
    operator can fix the cause and republish it.
    """

    type_name: ClassVar[str] = "DeadLetter"
    type: Literal["DeadLetter"] = "DeadLetter"
    schema_version: Literal[1] = 1
    service: str
    code: ReasonCode
    error: Annotated[str, Field(max_length=4000)]
    subject: str
    headers: dict[str, str] = Field(default_factory=dict)
    payload_b64: str
    original_id: str | None = None
    deliveries: Annotated[int, Field(ge=0)] = 1
