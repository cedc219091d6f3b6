"""Wire format: Arrow bodies any reader can open, and decode failures with reason codes."""

from __future__ import annotations

import json

import event_factories as ef
import numpy as np
import pyarrow as pa
import pytest

from decile import codec
from decile.events import BarBatch, CandidateSignal, FeatureBatch, Fill, Order
from decile.reasons import ReasonCode


def _decode_error(
    body: bytes, headers: dict[str, str] | None = None, expect: type | None = None
) -> codec.DecodeError:
    with pytest.raises(codec.DecodeError) as info:
        codec.decode(body, headers, expect=expect)
    return info.value


def _json_body(**changes: object) -> bytes:
    body = json.loads(codec.encode(ef.candidate())[0])
    body.update(changes)
    return json.dumps(body).encode()


# ---------------------------------------------------------------- Arrow bodies


def test_a_bar_batch_body_is_an_arrow_stream_plain_pyarrow_reads() -> None:
    bars = ef.bar_batch()
    body, headers = codec.encode(bars)
    assert headers[codec.H_CONTENT] == codec.ARROW_CT
    table = pa.ipc.open_stream(body).read_all()
    assert table.column_names == ["symbol", "open", "high", "low", "close", "volume"]
    assert table.schema.field("symbol").type == pa.string()
    assert all(table.schema.field(c).type == pa.float64() for c in table.column_names[1:])
    assert table.column("symbol").to_pylist() == list(ef.SYMBOLS)
    assert table.column("close").to_pylist() == [62_250.0, 3_410.0, 121.0]
    assert table.num_rows == 3


def test_the_envelope_rides_in_the_arrow_schema_metadata() -> None:
    bars = ef.bar_batch()
    table = pa.ipc.open_stream(codec.encode(bars)[0]).read_all()
    meta = table.schema.metadata
    assert meta is not None
    envelope = json.loads(meta[b"decile.envelope"])
    assert envelope["type"] == "BarBatch"
    assert envelope["schema_version"] == 1
    assert envelope["id"] == bars.id
    assert envelope["trace_id"] == bars.trace_id
    assert envelope["tf"] == "5m"
    assert envelope["missing"] == ["XRP/USDT"]
    # the matrix is carried once, as columns, not repeated in the envelope
    assert "values" not in envelope
    assert "symbols" not in envelope


def test_a_feature_batch_body_names_its_feature_columns_and_keeps_nan_as_nan() -> None:
    feats = ef.feature_batch()
    table = pa.ipc.open_stream(codec.encode(feats)[0]).read_all()
    assert table.column_names == ["symbol", *ef.FEATURE_NAMES]
    rsi = table.column("rsi_14").to_numpy()
    assert np.isnan(rsi[1])
    assert rsi[0] == 61.2


def test_an_empty_cross_section_round_trips() -> None:
    bars = ef.bar_batch(symbols=(), values=np.empty((0, 5)))
    decoded = codec.decode(*codec.encode(bars))
    assert decoded == bars
    assert isinstance(decoded, BarBatch)
    assert decoded.values.shape == (0, 5)


def test_an_arrow_body_is_recognised_without_headers() -> None:
    bars = ef.bar_batch()
    assert codec.decode(codec.encode(bars)[0]) == bars


def test_a_decoded_matrix_is_read_only() -> None:
    decoded = codec.decode(*codec.encode(ef.bar_batch()))
    assert isinstance(decoded, BarBatch)
    assert not decoded.values.flags.writeable


@pytest.mark.parametrize("keep", [0, 3, 4, 8, 100, 400, -100, -30, -9])
def test_a_truncated_arrow_body_is_a_decode_error(keep: int) -> None:
    body, headers = codec.encode(ef.bar_batch())
    err = _decode_error(body[:keep], headers)
    assert err.code is ReasonCode.DECODE_ERROR


def test_an_arrow_body_cut_after_its_schema_is_a_decode_error_not_an_empty_batch() -> None:
    bars = ef.bar_batch()
    body, headers = codec.encode(bars)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, pa.ipc.open_stream(body).schema):
        pass  # schema message and end-of-stream only: what a cut before the batch looks like
    schema_only = sink.getvalue().to_pybytes()
    err = _decode_error(schema_only, headers)
    assert err.code is ReasonCode.DECODE_ERROR
    # and the same cut of the real body, without the end-of-stream marker
    err = _decode_error(body[: len(schema_only) - 8], headers)
    assert err.code is ReasonCode.DECODE_ERROR


def _arrow(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def test_an_arrow_body_without_the_envelope_is_a_decode_error() -> None:
    body = _arrow(pa.table({"symbol": ["BTC/USDT"], "open": [1.0]}))
    err = _decode_error(body, {codec.H_CONTENT: codec.ARROW_CT})
    assert err.code is ReasonCode.DECODE_ERROR
    assert "envelope" in str(err)


def test_an_arrow_body_whose_first_column_is_not_symbol_is_a_decode_error() -> None:
    table = pa.ipc.open_stream(codec.encode(ef.bar_batch())[0]).read_all()
    reordered = table.select(["open", "symbol", "high", "low", "close", "volume"])
    err = _decode_error(_arrow(reordered))
    assert err.code is ReasonCode.DECODE_ERROR
    assert "symbol" in str(err)


@pytest.mark.parametrize("envelope", [b"not json", b"[1, 2]", b'"BarBatch"'])
def test_an_arrow_envelope_that_is_not_a_json_object_is_a_decode_error(envelope: bytes) -> None:
    table = pa.ipc.open_stream(codec.encode(ef.bar_batch())[0]).read_all()
    body = _arrow(table.replace_schema_metadata({b"decile.envelope": envelope}))
    err = _decode_error(body)
    assert err.code is ReasonCode.DECODE_ERROR


def test_an_arrow_body_with_bad_bars_is_a_validation_error() -> None:
    table = pa.ipc.open_stream(codec.encode(ef.bar_batch())[0]).read_all()
    close = pa.array([62_250.0, -1.0, 121.0])
    body = _arrow(
        table.set_column(4, "close", close).replace_schema_metadata(table.schema.metadata)
    )
    err = _decode_error(body)
    assert err.code is ReasonCode.VALIDATION_ERROR


# ---------------------------------------------------------------- JSON decode errors


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"{", b"\xff\xfe\x00garbage", b'{"type": "CandidateSignal"'],
)
def test_a_body_that_is_not_json_is_a_decode_error(body: bytes) -> None:
    assert _decode_error(body).code is ReasonCode.DECODE_ERROR


@pytest.mark.parametrize("body", [b"[]", b'[{"type": "CandidateSignal"}]', b"42", b'"x"', b"null"])
def test_json_that_is_not_an_object_is_a_decode_error(body: bytes) -> None:
    err = _decode_error(body)
    assert err.code is ReasonCode.DECODE_ERROR
    assert "object" in str(err)


@pytest.mark.parametrize("type_name", ["Nope", "", None, 42, "candidatesignal"])
def test_an_unknown_event_type_is_named_as_such(type_name: object) -> None:
    err = _decode_error(_json_body(type=type_name))
    assert err.code is ReasonCode.UNKNOWN_EVENT_TYPE


def test_a_body_without_a_type_is_an_unknown_event_type() -> None:
    body = json.loads(_json_body())
    del body["type"]
    err = _decode_error(json.dumps(body).encode())
    assert err.code is ReasonCode.UNKNOWN_EVENT_TYPE


@pytest.mark.parametrize("version", [2, 0, "1", None])
def test_an_unsupported_schema_version_is_named_as_such(version: object) -> None:
    err = _decode_error(_json_body(schema_version=version))
    assert err.code is ReasonCode.UNKNOWN_SCHEMA_VERSION
    assert "CandidateSignal" in str(err)


def test_an_arrow_body_with_schema_version_2_is_named_as_such() -> None:
    table = pa.ipc.open_stream(codec.encode(ef.bar_batch())[0]).read_all()
    assert table.schema.metadata is not None
    envelope = json.loads(table.schema.metadata[b"decile.envelope"]) | {"schema_version": 2}
    body = _arrow(table.replace_schema_metadata({b"decile.envelope": json.dumps(envelope)}))
    assert _decode_error(body).code is ReasonCode.UNKNOWN_SCHEMA_VERSION


def test_a_missing_field_is_a_validation_error_naming_the_field() -> None:
    body = json.loads(_json_body())
    del body["entry_price"]
    err = _decode_error(json.dumps(body).encode())
    assert err.code is ReasonCode.VALIDATION_ERROR
    assert "entry_price" in str(err)


def test_a_wrongly_typed_field_is_a_validation_error() -> None:
    err = _decode_error(_json_body(rank="first"))
    assert err.code is ReasonCode.VALIDATION_ERROR
    assert "rank" in str(err)


def test_an_unknown_field_is_a_validation_error() -> None:
    err = _decode_error(_json_body(surprise=True))
    assert err.code is ReasonCode.VALIDATION_ERROR
    assert "surprise" in str(err)


def test_an_event_of_another_type_than_expected_is_an_unknown_event_type() -> None:
    body, headers = codec.encode(ef.fill())
    err = _decode_error(body, headers, expect=Order)
    assert err.code is ReasonCode.UNKNOWN_EVENT_TYPE
    assert "Order" in str(err)
    assert "Fill" in str(err)
    assert isinstance(codec.decode(body, headers, expect=Fill), Fill)


def test_a_columnar_event_of_another_type_than_expected_is_an_unknown_event_type() -> None:
    body, headers = codec.encode(ef.bar_batch())
    err = _decode_error(body, headers, expect=FeatureBatch)
    assert err.code is ReasonCode.UNKNOWN_EVENT_TYPE


def test_the_type_header_decides_when_the_body_has_no_type() -> None:
    body = json.loads(_json_body())
    del body["type"]
    decoded = codec.decode(json.dumps(body).encode(), {codec.H_TYPE: "CandidateSignal"})
    assert isinstance(decoded, CandidateSignal)


def test_decode_error_is_a_value_error_with_its_code() -> None:
    err = codec.DecodeError(ReasonCode.DECODE_ERROR, "boom")
    assert isinstance(err, ValueError)
    assert err.code is ReasonCode.DECODE_ERROR
    assert str(err) == "boom"
