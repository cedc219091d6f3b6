"""Wire format: events to (body, headers) and back.

- Ordinary events are JSON (pydantic), with ``type`` in the body.
- Cross-sections (:class:`ColumnarEvent`) are one Arrow IPC stream: the envelope
  as JSON in the schema metadata, a ``symbol`` column and one float64 column per
  value name. Any Arrow reader (pandas, polars, DuckDB, Rust, Go) can read it.

Headers repeat the type, schema version, trace id and carry ``Nats-Msg-Id`` =
event id so JetStream drops a duplicate publish.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import ValidationError

from decile.events import EVENT_TYPES, ColumnarEvent, Event
from decile.reasons import ReasonCode

H_MSG_ID = "Nats-Msg-Id"
H_TYPE = "Decile-Type"
H_SCHEMA = "Decile-Schema"
H_TRACE = "Decile-Trace"
H_CONTENT = "Content-Type"
JSON_CT = "application/json"
ARROW_CT = "application/vnd.apache.arrow.stream"
META_KEY = b"decile.envelope"


class DecodeError(ValueError):
    """A body that is not a valid event; ``code`` says which way it failed."""

    def __init__(self, code: ReasonCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def headers_for(event: Event) -> dict[str, str]:
    return {
        H_MSG_ID: event.id,
        H_TYPE: event.type_name,
        H_SCHEMA: str(getattr(event, "schema_version", 1)),
        H_TRACE: event.trace_id,
        H_CONTENT: ARROW_CT if isinstance(event, ColumnarEvent) else JSON_CT,
    }


def encode(event: Event) -> tuple[bytes, dict[str, str]]:
    if isinstance(event, ColumnarEvent):
        return _encode_arrow(event), headers_for(event)
    return event.model_dump_json().encode(), headers_for(event)


@functools.lru_cache(maxsize=64)
def _schema(columns: tuple[str, ...], float32: int = 0) -> pa.Schema:
    """``symbol``, then the first ``float32`` columns as float32 and the rest as float64."""
    fields = [pa.field("symbol", pa.string())] + [
        pa.field(c, pa.float32() if j < float32 else pa.float64()) for j, c in enumerate(columns)
    ]
    return pa.schema(fields)


def _encode_arrow(event: ColumnarEvent) -> bytes:
    envelope = event.model_dump_json(exclude={"symbols", "values"}).encode()
    n32 = event.float32_columns
    schema = _schema(event.columns, n32).with_metadata({META_KEY: envelope})
    cols = np.asfortranarray(event.values)  # contiguous columns: zero-copy into Arrow
    arrays = [pa.array(event.symbols, type=pa.string())]
    arrays += [
        pa.array(cols[:, j].astype(np.float32) if j < n32 else cols[:, j])
        for j in range(cols.shape[1])
    ]
    batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        writer.write_batch(batch)
    return bytes(sink.getvalue().to_pybytes())


def _decode_arrow(body: bytes) -> dict[str, Any]:
    try:
        reader = pa.ipc.open_stream(body)
        batches = list(reader)
    except (pa.ArrowInvalid, OSError) as err:
        raise DecodeError(ReasonCode.DECODE_ERROR, f"not an Arrow IPC stream: {err}") from None
    # We always write one batch, even for an empty cross-section: a stream of
    # just a schema is a body cut short, not an empty cycle.
    if not batches:
        raise DecodeError(ReasonCode.DECODE_ERROR, "Arrow body has no record batch (truncated?)")
    table = pa.Table.from_batches(batches, schema=reader.schema)
    meta = table.schema.metadata or {}
    if META_KEY not in meta:
        raise DecodeError(ReasonCode.DECODE_ERROR, "Arrow body has no decile.envelope metadata")
    fields = json.loads(meta[META_KEY])
    if not isinstance(fields, dict):
        raise DecodeError(ReasonCode.DECODE_ERROR, "decile.envelope must be a JSON object")
    if table.num_columns < 1 or table.column_names[0] != "symbol":
        raise DecodeError(ReasonCode.DECODE_ERROR, "first Arrow column must be 'symbol'")
    fields["symbols"] = tuple(table.column(0).to_pylist())
    cols = [table.column(j).to_numpy() for j in range(1, table.num_columns)]
    n = table.num_rows
    fields["values"] = np.column_stack(cols) if cols else np.empty((n, 0))
    return fields


def decode(
    body: bytes, headers: dict[str, str] | None = None, expect: type[Event] | None = None
) -> Event:
    """Bytes to a validated event, or :class:`DecodeError` with a reason code.

    ``expect`` pins the accepted type; otherwise the ``type`` field decides.
    """
    headers = headers or {}
    is_arrow = headers.get(H_CONTENT) == ARROW_CT or body[:4] == b"\xff\xff\xff\xff"
    try:
        fields = _decode_arrow(body) if is_arrow else json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DecodeError(ReasonCode.DECODE_ERROR, f"body is not JSON: {err}") from None
    if not isinstance(fields, dict):
        raise DecodeError(ReasonCode.DECODE_ERROR, "body must be a JSON object")
    type_name = fields.get("type") or headers.get(H_TYPE)
    cls = expect or EVENT_TYPES.get(str(type_name))
    if cls is None:
        raise DecodeError(ReasonCode.UNKNOWN_EVENT_TYPE, f"unknown event type {type_name!r}")
    if expect is not None and type_name not in (None, expect.type_name):
        raise DecodeError(
            ReasonCode.UNKNOWN_EVENT_TYPE, f"expected {expect.type_name}, got {type_name!r}"
        )
    version_field = cls.model_fields.get("schema_version")
    known = version_field.default if version_field is not None else 1
    if "schema_version" in fields and fields["schema_version"] != known:
        raise DecodeError(
            ReasonCode.UNKNOWN_SCHEMA_VERSION,
            f"{cls.type_name} schema_version {fields['schema_version']!r} is not supported "
            f"(this build reads {known})",
        )
    try:
        return cls.model_validate(fields) if is_arrow else cls.model_validate_json(body)
    except ValidationError as err:
        raise DecodeError(ReasonCode.VALIDATION_ERROR, _short(err)) from None


def _short(err: ValidationError) -> str:
    parts = [f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in err.errors()[:8]]
    return f"{err.title}: " + "; ".join(parts)
