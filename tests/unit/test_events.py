"""Event contracts: frozen, strict, finite, UTC, UUIDv7, and round-trip through the codec."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import event_factories as ef
import numpy as np
import pytest
from pydantic import BaseModel, ValidationError

from decile import codec, ids
from decile.events import (
    ALL_EVENTS,
    EVENT_TYPES,
    BarBatch,
    CandidateSignal,
    ColumnarEvent,
    ConfirmDecision,
    DeadLetter,
    Event,
    FeatureBatch,
    KillSwitchChanged,
    ModelActivated,
    RiskDecision,
)
from decile.reasons import ReasonCode

Path = tuple[str | int, ...]

# every event type, plus the second shape of RiskDecision
SAMPLES: dict[str, Callable[[], Event]] = {
    cls.type_name: factory for cls, factory in ef.FACTORIES.items()
} | {"RiskDecision-rejected": ef.risk_rejected}

# event types with no float field outside a columnar matrix
NO_FLOATS = {DeadLetter, KillSwitchChanged, ModelActivated, BarBatch, FeatureBatch}

NON_FINITE = [float("nan"), float("inf"), float("-inf")]


def _event_params() -> list[Any]:
    return [pytest.param(cls, id=cls.type_name) for cls in ALL_EVENTS]


def _sample_params() -> list[Any]:
    return [pytest.param(f, id=name) for name, f in SAMPLES.items()]


def _dump(ev: Event) -> dict[str, Any]:
    """Python-mode dump that ``model_validate`` accepts back (matrix as nested lists)."""
    return ev.model_dump()


def _leaves(value: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _leaves(v, (*path, i))
    else:
        yield path, value


def _set(data: dict[str, Any], path: Path, value: Any) -> dict[str, Any]:
    """A deep copy of ``data`` with the leaf at ``path`` replaced."""
    copy: dict[str, Any] = json.loads(json.dumps(data, default=str))  # plain, mutable
    # json round trip turned datetimes into strings; restore the originals
    for p, v in _leaves(data):
        if isinstance(v, datetime):
            _put(copy, p, v)
    _put(copy, path, value)
    return copy


def _put(data: Any, path: Path, value: Any) -> None:
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


def _get(obj: Any, path: Path) -> Any:
    for key in path:
        obj = getattr(obj, str(key)) if isinstance(obj, BaseModel) else obj[key]
    return obj


def _float_paths(ev: Event) -> list[Path]:
    skip = "values" if isinstance(ev, ColumnarEvent) else None  # matrices: see their own tests
    return [
        p
        for p, v in _leaves(_dump(ev))
        if isinstance(v, float) and not isinstance(v, bool) and p[0] != skip
    ]


def _datetime_paths(ev: Event) -> list[Path]:
    return [p for p, v in _leaves(_dump(ev)) if isinstance(v, datetime)]


# ---------------------------------------------------------------- every event type


def test_every_event_type_has_a_factory() -> None:
    assert set(ef.FACTORIES) == set(ALL_EVENTS)


def test_event_types_are_registered_by_their_wire_name() -> None:
    assert set(EVENT_TYPES) == {cls.type_name for cls in ALL_EVENTS}
    assert len(EVENT_TYPES) == len(ALL_EVENTS)
    for name, cls in EVENT_TYPES.items():
        assert cls.model_fields["type"].default == name
        assert cls.model_fields["schema_version"].default == 1


@pytest.mark.parametrize("factory", _sample_params())
def test_factory_builds_a_valid_event_that_revalidates_equal(factory: Callable[[], Event]) -> None:
    ev = factory()
    assert type(ev).model_validate(_dump(ev)) == ev


@pytest.mark.parametrize("factory", _sample_params())
def test_codec_round_trip_gives_back_an_equal_event(factory: Callable[[], Event]) -> None:
    ev = factory()
    body, headers = codec.encode(ev)
    assert isinstance(body, bytes)
    for decoded in (
        codec.decode(body, headers),
        codec.decode(body),  # the body alone says what it is
        codec.decode(body, headers, expect=type(ev)),
    ):
        assert type(decoded) is type(ev)
        assert decoded == ev
        assert decoded.id == ev.id
        assert decoded.trace_id == ev.trace_id
        assert decoded.ts_event == ev.ts_event


@pytest.mark.parametrize("factory", _sample_params())
def test_headers_carry_the_id_type_schema_and_trace(factory: Callable[[], Event]) -> None:
    ev = factory()
    _, headers = codec.encode(ev)
    assert headers[codec.H_MSG_ID] == ev.id
    assert headers[codec.H_TYPE] == ev.type_name
    assert headers[codec.H_SCHEMA] == "1"
    assert headers[codec.H_TRACE] == ev.trace_id
    columnar = isinstance(ev, ColumnarEvent)
    assert headers[codec.H_CONTENT] == (codec.ARROW_CT if columnar else codec.JSON_CT)


@pytest.mark.parametrize(
    "cls", [p for p in _event_params() if not issubclass(p.values[0], ColumnarEvent)]
)
def test_json_body_names_its_type_and_schema_version(cls: type[Event]) -> None:
    ev = ef.make(cls)  # columnar events travel as Arrow: see test_codec.py
    body = json.loads(codec.encode(ev)[0])
    assert body["type"] == cls.type_name
    assert body["schema_version"] == 1
    assert body["id"] == ev.id


@pytest.mark.parametrize("cls", _event_params())
def test_an_unknown_field_is_refused(cls: type[Event]) -> None:
    data = _dump(ef.make(cls)) | {"surprise": 1}
    with pytest.raises(ValidationError) as info:
        cls.model_validate(data)
    assert [e["type"] for e in info.value.errors()] == ["extra_forbidden"]


def test_an_unknown_field_in_a_nested_part_is_refused() -> None:
    data = _dump(ef.risk_approved())
    data["intent"]["surprise"] = 1
    with pytest.raises(ValidationError, match="Extra inputs"):
        RiskDecision.model_validate(data)
    data = _dump(ef.confirm())
    data["candidate"]["surprise"] = 1
    with pytest.raises(ValidationError, match="Extra inputs"):
        ConfirmDecision.model_validate(data)


@pytest.mark.parametrize("bad", NON_FINITE, ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("cls", _event_params())
def test_non_finite_floats_are_refused_in_every_float_field(cls: type[Event], bad: float) -> None:
    ev = ef.make(cls)
    paths = _float_paths(ev)
    assert bool(paths) == (cls not in NO_FLOATS), paths
    data = _dump(ev)
    for path in paths:
        with pytest.raises(ValidationError):
            cls.model_validate(_set(data, path, bad))
    if isinstance(ev, ColumnarEvent):
        values = ev.values.copy()
        values[0, 0] = bad
        if cls is FeatureBatch and math.isnan(bad):  # NaN = warm-up, by contract
            assert math.isnan(ef.feature_batch(values=values).values[0, 0])
        else:
            with pytest.raises(ValidationError):
                ef.make(cls, values=values)


def test_non_finite_floats_in_json_are_refused_by_the_codec() -> None:
    body = json.loads(codec.encode(ef.candidate())[0])
    for bad in ("NaN", "Infinity", "-Infinity"):
        text = json.dumps(body).replace('"entry_price": 62250.0', f'"entry_price": {bad}')
        assert bad in text
        with pytest.raises(codec.DecodeError) as info:
            codec.decode(text.encode())
        assert info.value.code is ReasonCode.VALIDATION_ERROR


@pytest.mark.parametrize("cls", _event_params())
def test_a_naive_datetime_is_refused_in_every_datetime_field(cls: type[Event]) -> None:
    ev = ef.make(cls)
    paths = _datetime_paths(ev)
    assert ("ts_event",) in paths
    data = _dump(ev)
    for path in paths:
        naive = _get(ev, path).replace(tzinfo=None)
        with pytest.raises(ValidationError, match="timezone"):
            cls.model_validate(_set(data, path, naive))


@pytest.mark.parametrize("cls", _event_params())
def test_an_aware_non_utc_datetime_is_kept_as_the_same_instant_in_utc(cls: type[Event]) -> None:
    ev = ef.make(cls)
    data = _dump(ev)
    plus2 = timezone(timedelta(hours=2))
    for path in _datetime_paths(ev):
        instant = _get(ev, path)
        local = instant.astimezone(plus2)
        converted = _get(cls.model_validate(_set(data, path, local)), path)
        assert converted == instant
        assert converted.utcoffset() == timedelta(0)
        assert converted.tzinfo is UTC


@pytest.mark.parametrize("cls", _event_params())
def test_the_default_event_time_is_now_in_utc(cls: type[Event]) -> None:
    before = datetime.now(UTC)
    ev = ef.make(cls)
    assert ev.ts_event.tzinfo is UTC
    assert before <= ev.ts_event <= datetime.now(UTC)


@pytest.mark.parametrize("cls", _event_params())
def test_ids_are_uuid7_and_trace_ids_are_32_hex(cls: type[Event]) -> None:
    ev = ef.make(cls)
    parsed = uuid.UUID(ev.id)
    assert parsed.version == 7
    assert str(parsed) == ev.id
    assert ids.is_uuid7(ev.id)
    assert len(ev.trace_id) == 32
    assert int(ev.trace_id, 16) >= 0
    assert ef.make(cls).id != ev.id


@pytest.mark.parametrize("cls", _event_params())
@pytest.mark.parametrize(
    "bad_id",
    [str(uuid.uuid4()), ids.new_id().upper(), "not-an-id", ""],
    ids=["uuid4", "upper-case", "garbage", "empty"],
)
def test_an_id_that_is_not_a_lower_case_uuid7_is_refused(cls: type[Event], bad_id: str) -> None:
    with pytest.raises(ValidationError, match="UUIDv7"):
        cls.model_validate(_dump(ef.make(cls)) | {"id": bad_id})


@pytest.mark.parametrize("cls", _event_params())
@pytest.mark.parametrize(
    "bad_trace", ["", "0" * 31, "0" * 33, "g" * 32, "0AF7651916CD43DD8448EB211C80319C"]
)
def test_a_malformed_trace_id_is_refused(cls: type[Event], bad_trace: str) -> None:
    with pytest.raises(ValidationError):
        cls.model_validate(_dump(ef.make(cls)) | {"trace_id": bad_trace})


@pytest.mark.parametrize("cls", _event_params())
def test_events_are_frozen(cls: type[Event]) -> None:
    ev = ef.make(cls)
    with pytest.raises(ValidationError, match="frozen"):
        ev.id = ids.new_id()  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        ev.producer = "someone-else"  # type: ignore[misc]
    assert ev.producer != "someone-else"


def test_nested_parts_are_frozen_too() -> None:
    decision = ef.risk_approved()
    with pytest.raises(ValidationError, match="frozen"):
        decision.confirm.candidate.entry_price = 1.0  # type: ignore[misc]
    assert decision.intent is not None
    with pytest.raises(ValidationError, match="frozen"):
        decision.intent.quantity = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("cls", [BarBatch, FeatureBatch])
def test_columnar_matrices_are_read_only(cls: type[ColumnarEvent]) -> None:
    ev = ef.make(cls)
    assert isinstance(ev, ColumnarEvent)
    with pytest.raises(ValueError, match="read-only"):
        ev.values[0, 0] = 1.0


# ---------------------------------------------------------------- BarBatch


def _bars_with(row: int, col: int, value: float) -> np.ndarray:
    m = ef.bars_matrix()
    m[row, col] = value
    return m


def test_bar_batch_exposes_its_ohlcv_columns() -> None:
    bars = ef.bar_batch()
    assert bars.columns == ("open", "high", "low", "close", "volume")
    assert bars.column("close").tolist() == [62_250.0, 3_410.0, 121.0]
    assert bars.values.dtype == np.float64


@pytest.mark.parametrize("col", [0, 1, 2, 3], ids=["open", "high", "low", "close"])
@pytest.mark.parametrize("price", [0.0, -1.0])
def test_bar_batch_refuses_non_positive_prices(col: int, price: float) -> None:
    with pytest.raises(ValidationError, match="prices must be > 0"):
        ef.bar_batch(values=_bars_with(1, col, price))


def test_bar_batch_refuses_high_below_low() -> None:
    m = ef.bars_matrix()
    m[0] = [100.0, 99.0, 101.0, 100.0, 1.0]
    with pytest.raises(ValidationError, match="low <= open, close <= high"):
        ef.bar_batch(values=m)


@pytest.mark.parametrize(
    "row",
    [
        [100.0, 101.0, 99.0, 102.0, 1.0],  # close above high
        [98.0, 101.0, 99.0, 100.0, 1.0],  # open below low
    ],
)
def test_bar_batch_refuses_open_or_close_outside_the_range(row: list[float]) -> None:
    m = ef.bars_matrix()
    m[2] = row
    with pytest.raises(ValidationError, match="low <= open, close <= high"):
        ef.bar_batch(values=m)


def test_bar_batch_refuses_negative_volume_and_allows_zero() -> None:
    with pytest.raises(ValidationError, match="volume must be >= 0"):
        ef.bar_batch(values=_bars_with(0, 4, -0.5))
    assert ef.bar_batch(values=_bars_with(0, 4, 0.0)).column("volume")[0] == 0.0


@pytest.mark.parametrize("bad", NON_FINITE, ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("col", range(5))
def test_bar_batch_refuses_non_finite_values(col: int, bad: float) -> None:
    with pytest.raises(ValidationError):
        ef.bar_batch(values=_bars_with(1, col, bad))


def test_bar_batch_refuses_a_matrix_that_does_not_match_its_symbols_or_columns() -> None:
    with pytest.raises(ValidationError, match="3 rows for 2 symbols"):
        ef.bar_batch(symbols=("BTC/USDT", "ETH/USDT"))
    with pytest.raises(ValidationError, match="4 columns for 5 names"):
        ef.bar_batch(values=ef.bars_matrix()[:, :4])
    with pytest.raises(ValidationError, match="2-D"):
        ef.bar_batch(values=ef.bars_matrix()[0])


def test_bar_batch_refuses_duplicate_symbols() -> None:
    with pytest.raises(ValidationError, match="unique"):
        ef.bar_batch(symbols=("BTC/USDT", "ETH/USDT", "BTC/USDT"))


@pytest.mark.parametrize("bad", ["btc/usdt", "BTC-USDT", "BTC.USDT", "A/B/C", "", "BTC/USDT\n"])
def test_bar_batch_refuses_symbols_that_cannot_be_subject_tokens(bad: str) -> None:
    with pytest.raises(ValidationError, match="symbol"):
        ef.bar_batch(symbols=("BTC/USDT", "ETH/USDT", bad))


def test_a_symbol_with_an_embedded_newline_cannot_pass_as_two_symbols() -> None:
    # "BTC/USDT\nETH/USDT" joined with the others would look like a valid list
    m = ef.bars_matrix()[:2]
    with pytest.raises(ValidationError, match="symbol"):
        ef.bar_batch(symbols=("BTC/USDT\nETH/USDT", "SOL/USDT"), values=m)


def test_bar_batch_accepts_an_empty_cross_section() -> None:
    bars = ef.bar_batch(symbols=(), values=np.empty((0, 5)))
    assert bars.values.shape == (0, 5)


def test_bar_batch_refuses_a_naive_bar_time() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        ef.bar_batch(bar_time=datetime(2024, 3, 1, 12, 0))


# ---------------------------------------------------------------- FeatureBatch


def test_feature_batch_allows_nan_for_warm_up() -> None:
    feats = ef.feature_batch()
    assert math.isnan(feats.column("rsi_14")[1])
    assert feats.columns == ef.FEATURE_NAMES


@pytest.mark.parametrize("bad", [float("inf"), float("-inf")], ids=["inf", "-inf"])
def test_feature_batch_refuses_inf(bad: float) -> None:
    values = ef.feature_batch().values.copy()
    values[0, 1] = bad
    with pytest.raises(ValidationError, match="inf"):
        ef.feature_batch(values=values)


def test_feature_batch_keeps_nan_through_the_codec() -> None:
    feats = ef.feature_batch()
    decoded = codec.decode(*codec.encode(feats))
    assert isinstance(decoded, FeatureBatch)
    assert decoded == feats
    assert np.isnan(decoded.values).tolist() == np.isnan(feats.values).tolist()


def test_feature_batch_refuses_a_matrix_wider_than_its_names() -> None:
    with pytest.raises(ValidationError, match="3 columns for 2 names"):
        ef.feature_batch(feature_names=("ret_1", "atr_14"))


# ---------------------------------------------------------------- RiskDecision


def test_an_approved_decision_needs_an_intent() -> None:
    with pytest.raises(ValidationError, match="approved decision carries an intent"):
        ef.risk_approved(intent=None)


def test_a_rejected_decision_needs_its_rejection() -> None:
    with pytest.raises(ValidationError, match="rejected decision carries its rejection"):
        ef.risk_rejected(rejection=None)


def test_an_approved_decision_carries_no_rejection_and_a_rejected_one_no_intent() -> None:
    with pytest.raises(ValidationError):
        ef.risk_approved(rejection=ef.rejection())
    with pytest.raises(ValidationError):
        ef.risk_rejected(intent=ef.order_intent())


def test_a_risk_decision_names_its_symbol_and_rejection() -> None:
    rejected = ef.risk_rejected()
    assert rejected.symbol == "BTC/USDT"
    assert rejected.rejection is not None
    assert rejected.rejection.code is ReasonCode.DAILY_LOSS_LIMIT
    assert rejected.rejection.values == {"pnl_today": -512.5, "limit": -500.0}


def test_a_rejection_code_must_be_a_reason_code() -> None:
    with pytest.raises(ValidationError):
        ef.rejection(code="TOO_RISKY")
    with pytest.raises(ValidationError):
        ef.rejection(gate="")


# ---------------------------------------------------------------- prices and signals


@pytest.mark.parametrize("price", [0.0, -62_250.0])
def test_a_candidate_with_a_non_positive_entry_price_is_refused(price: float) -> None:
    with pytest.raises(ValidationError, match="greater than 0"):
        ef.candidate(entry_price=price)


@pytest.mark.parametrize(
    ("factory", "field"),
    [
        (ef.order, "price"),
        (ef.order, "stop_price"),
        (ef.fill, "price"),
        (ef.trade_closed, "exit_price"),
        (ef.order_intent, "take_profit"),
    ],
)
def test_prices_must_be_positive_everywhere(factory: Callable[..., BaseModel], field: str) -> None:
    with pytest.raises(ValidationError, match="greater than 0"):
        factory(**{field: 0.0})


@pytest.mark.parametrize("p_win", [-0.01, 1.01])
def test_a_probability_outside_zero_and_one_is_refused(p_win: float) -> None:
    with pytest.raises(ValidationError):
        ef.candidate(p_win=p_win)


def test_a_negative_fee_is_refused() -> None:
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        ef.fill(fee=-0.01)


# ---------------------------------------------------------------- follow()


def _confirm_fields(cand: CandidateSignal) -> dict[str, Any]:
    return {
        "candidate": cand,
        "decision": "approve",
        "side": cand.side,
        "decided_at": cand.bar_time + timedelta(minutes=15),
    }


def test_follow_keeps_the_trace_and_derives_the_id() -> None:
    cand = ef.candidate()
    child = cand.follow(ConfirmDecision, "approve", **_confirm_fields(cand))
    assert isinstance(child, ConfirmDecision)
    assert child.trace_id == cand.trace_id
    assert child.id == ids.derive(cand.id, "ConfirmDecision", "approve")
    assert ids.is_uuid7(child.id)
    assert ids.id_time_ms(child.id) == ids.id_time_ms(cand.id)


def test_follow_gives_a_redelivered_parent_the_same_child_id() -> None:
    cand = ef.candidate()
    redelivered = codec.decode(*codec.encode(cand))
    first = cand.follow(ConfirmDecision, "approve", **_confirm_fields(cand))
    again = redelivered.follow(ConfirmDecision, "approve", **_confirm_fields(cand))
    assert first.id == again.id
    # only the event time may differ: it says when the child was built
    assert first.model_dump(exclude={"ts_event"}) == again.model_dump(exclude={"ts_event"})


def test_follow_gives_different_children_different_ids() -> None:
    cand = ef.candidate()
    a = cand.follow(ConfirmDecision, "approve", **_confirm_fields(cand))
    b = cand.follow(ConfirmDecision, "veto", **_confirm_fields(cand) | {"decision": "veto"})
    other = ef.candidate()
    c = other.follow(ConfirmDecision, "approve", **_confirm_fields(other))
    assert len({a.id, b.id, c.id}) == 3


def test_follow_respects_an_explicit_id_and_trace() -> None:
    cand = ef.candidate()
    explicit = ids.new_id()
    child = cand.follow(ConfirmDecision, id=explicit, trace_id="f" * 32, **_confirm_fields(cand))
    assert child.id == explicit
    assert child.trace_id == "f" * 32


def test_follow_validates_the_child() -> None:
    cand = ef.candidate()
    with pytest.raises(ValidationError, match="decision"):
        cand.follow(ConfirmDecision, **_confirm_fields(cand) | {"decision": "maybe"})
