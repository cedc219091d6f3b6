"""The event envelope every message on the bus carries.

Events are frozen, versioned contracts (STYLE.md, habit 5): unknown fields are
refused, floats must be finite, timestamps must carry a zone and are kept in
UTC. A breaking change is a new ``schema_version`` (a new class), never an edit.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Self, TypeVar

import numpy as np
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
    model_validator,
)

from decile import ids
from decile.reasons import ReasonCode
from decile.subjects import SYMBOL_PATTERN, SYMBOL_RE


def _uuid7(v: str) -> str:
    if not ids.is_uuid7(v):
        raise ValueError("must be a lower-case UUIDv7")
    return v


def _utc(v: datetime) -> datetime:
    return v.astimezone(UTC)


def _symbol(v: str) -> str:
    if not SYMBOL_RE.match(v):
        raise ValueError("symbol must be like 'BTC/USDT' (A-Z, 0-9, '_', one '/')")
    return v


_SYMBOLS_RE = re.compile(rf"(?:{SYMBOL_PATTERN}\n)*{SYMBOL_PATTERN}")


def _symbols(v: tuple[str, ...]) -> tuple[str, ...]:
    # one regex over the joined cross-section instead of a Python call per symbol;
    # the newline count stops one symbol with an embedded "\n" passing as two
    joined = "\n".join(v)
    if v and (joined.count("\n") != len(v) - 1 or not _SYMBOLS_RE.fullmatch(joined)):
        bad = next(s for s in v if not SYMBOL_RE.match(s))
        raise ValueError(f"symbol {bad!r} must be like 'BTC/USDT' (A-Z, 0-9, '_', one '/')")
    return v


EventId = Annotated[str, AfterValidator(_uuid7)]
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_utc)]
Symbol = Annotated[str, AfterValidator(_symbol)]
Symbols = Annotated[tuple[str, ...], AfterValidator(_symbols)]
Price = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
Probability = Annotated[float, Field(ge=0, le=1)]
Timeframe = Annotated[str, Field(pattern=r"^[1-9][0-9]*[mhdw]$")]
Scalar = float | int | str | bool | None


def new_trace_id() -> str:
    """W3C trace-context sized trace id (32 hex chars)."""
    return os.urandom(16).hex()


def utcnow() -> datetime:
    return datetime.now(UTC)


class Contract(BaseModel):
    """Frozen, strict base for events and their nested parts."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        allow_inf_nan=False,
        validate_default=False,
        ser_json_inf_nan="strings",
    )


class Rejection(Contract):
    """Why something was refused: the check, a stable code, and what decided it."""

    gate: Annotated[str, Field(min_length=1, max_length=64)]
    code: ReasonCode
    values: dict[str, Scalar] = Field(default_factory=dict)
    detail: str = ""


class Event(Contract):
    """Envelope fields shared by every event."""

    # The registry key on the wire (header ``Decile-Type`` and the JSON field).
    type_name: ClassVar[str] = ""

    id: EventId = Field(default_factory=ids.new_id)
    trace_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")] = Field(
        default_factory=new_trace_id
    )
    ts_event: UtcDatetime = Field(default_factory=utcnow)
    producer: Annotated[str, Field(min_length=1, max_length=64)] = "decile"

    def follow(self, cls: type[E], *parts: object, **fields: Any) -> E:
        """A child event of ``cls`` caused by this one: same trace, derived id.

        Redelivery of ``self`` gives the child the same id, so the server's dedup
        and every consumer drop the copy.
        """
        fields.setdefault("id", ids.derive(self.id, cls.type_name, *parts))
        fields.setdefault("trace_id", self.trace_id)
        return cls(**fields)


E = TypeVar("E", bound=Event)


# ---- columnar events: a typed envelope around one float64 matrix -------------


def _as_matrix(v: Any) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"values must be a 2-D matrix, got {a.ndim}-D")
    if np.isinf(a).any():
        raise ValueError("values must not contain inf")
    a.setflags(write=False)
    return a


Matrix = Annotated[
    np.ndarray,
    PlainValidator(_as_matrix),
    PlainSerializer(lambda a: a.tolist(), return_type=list),
    WithJsonSchema(
        {
            "type": "array",
            "description": "float64 matrix, one row per symbol, one column per name in "
            "`columns`; on the wire it is the Arrow IPC body, not JSON",
            "items": {"type": "array", "items": {"type": ["number", "null"]}},
        }
    ),
]


class ColumnarEvent(Event):
    """A cross-section: one row per symbol, carried as Arrow IPC, not JSON per symbol.

    Hot-path events (bars, features) are one message per cycle; the envelope
    fields ride in the Arrow schema metadata and the matrix as named columns.
    """

    symbols: Symbols
    values: Matrix

    @property
    def columns(self) -> tuple[str, ...]:
        raise NotImplementedError

    @property
    def float32_columns(self) -> int:
        """How many leading columns are float32 by contract (on the wire and in ``values``)."""
        return 0

    def column(self, name: str) -> np.ndarray:
        return self.values[:, self.columns.index(name)]

    @model_validator(mode="after")
    def _shape(self) -> Self:
        rows, cols = self.values.shape
        if rows != len(self.symbols):
            raise ValueError(f"values has {rows} rows for {len(self.symbols)} symbols")
        if cols != len(self.columns):
            raise ValueError(f"values has {cols} columns for {len(self.columns)} names")
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError("symbols must be unique within a cross-section")
        return self

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        a = self.model_dump(exclude={"values"})
        b = other.model_dump(exclude={"values"})  # type: ignore[attr-defined]
        return a == b and np.array_equal(self.values, other.values, equal_nan=True)  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]
