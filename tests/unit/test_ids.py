"""UUIDv7 event ids: time order, monotonicity, deterministic derivation."""

from __future__ import annotations

import itertools
import time
import uuid

import pytest

from decile import ids

T0_MS = 1_709_294_400_000  # 2024-03-01T12:00Z
V7 = ids.stable_id(T0_MS, "fixed")  # deterministic: test ids are the same on every xdist worker


def _is_v7(value: str) -> bool:
    u = uuid.UUID(value)
    return u.version == 7 and u.variant == uuid.RFC_4122 and str(u) == value


def test_the_fixed_id_used_below_is_itself_a_uuid7() -> None:
    assert _is_v7(V7)
    assert ids.is_uuid7(V7)


def test_new_id_is_a_lower_case_uuid7_with_the_rfc_variant() -> None:
    value = ids.new_id()
    assert _is_v7(value)
    assert ids.is_uuid7(value)


def test_new_id_encodes_the_current_millisecond(monkeypatch: pytest.MonkeyPatch) -> None:
    # forget earlier ids, which may have borrowed milliseconds ahead of the clock
    monkeypatch.setattr(ids, "_last_ms", 0)
    monkeypatch.setattr(ids, "_seq", 0)
    before = time.time_ns() // 1_000_000
    value = ids.new_id()
    after = time.time_ns() // 1_000_000
    assert before <= ids.id_time_ms(value) <= after


def test_new_id_is_strictly_increasing_over_ten_thousand_calls_in_one_millisecond() -> None:
    now_ms = max(time.time_ns() // 1_000_000, ids.id_time_ms(ids.new_id())) + 1
    burst = [ids.new_id(now_ms) for _ in range(10_000)]
    assert all(_is_v7(v) for v in burst)
    assert len(set(burst)) == len(burst)
    assert all(a < b for a, b in itertools.pairwise(burst))
    # string order is uuid order is time order
    assert [uuid.UUID(v).int for v in burst] == sorted(uuid.UUID(v).int for v in burst)
    # overflowing the 12-bit counter borrows the next milliseconds, never goes back
    assert ids.id_time_ms(burst[0]) == now_ms
    assert ids.id_time_ms(burst[-1]) >= now_ms


def test_new_id_is_strictly_increasing_over_ten_thousand_calls_on_the_real_clock() -> None:
    burst = [ids.new_id() for _ in range(10_000)]
    assert all(a < b for a, b in itertools.pairwise(burst))


def test_new_id_never_goes_back_when_the_clock_does(monkeypatch: pytest.MonkeyPatch) -> None:
    # the generator's state is process-wide: restore it so the far-future id cannot leak
    monkeypatch.setattr(ids, "_last_ms", ids._last_ms)
    monkeypatch.setattr(ids, "_seq", ids._seq)
    now_ms = ids._last_ms + 1_000
    later = ids.new_id(now_ms + 60_000)
    after_clock_step_back = ids.new_id(now_ms)
    assert after_clock_step_back > later
    assert ids.id_time_ms(after_clock_step_back) == now_ms + 60_000


def test_derive_is_deterministic() -> None:
    parent = ids.new_id()
    assert ids.derive(parent, "Order", 1) == ids.derive(parent, "Order", 1)


def test_derive_keeps_the_parent_time_and_is_a_uuid7() -> None:
    parent = ids.stable_id(T0_MS, "parent")
    child = ids.derive(parent, "RiskDecision")
    assert _is_v7(child)
    assert ids.id_time_ms(child) == ids.id_time_ms(parent) == T0_MS


def test_derive_differs_by_parent_and_by_parts() -> None:
    a, b = ids.new_id(), ids.new_id()
    assert ids.derive(a, "x") != ids.derive(b, "x")
    assert ids.derive(a, "x") != ids.derive(a, "y")
    assert ids.derive(a, "x", 1) != ids.derive(a, "x", 2)
    assert ids.derive(a, "x") != a


def test_stable_id_is_deterministic_and_carries_the_given_time() -> None:
    first = ids.stable_id(T0_MS, "5m", T0_MS, 0)
    assert first == ids.stable_id(T0_MS, "5m", T0_MS, 0)
    assert _is_v7(first)
    assert ids.id_time_ms(first) == T0_MS


def test_stable_id_differs_by_key_and_by_time() -> None:
    assert ids.stable_id(T0_MS, "5m", 0) != ids.stable_id(T0_MS, "5m", 1)
    assert ids.stable_id(T0_MS, "5m", 0) != ids.stable_id(T0_MS + 1, "5m", 0)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "not-a-uuid",
        "4f870cc3-ee89-403b-b502-f52baaaab773",  # v4
        "7fd465e0-e5dc-11f1-a4cf-02fc00000001",  # v1
        V7.upper(),
        "{" + V7 + "}",
        "urn:uuid:" + V7,
        V7.replace("-", ""),
    ],
)
def test_is_uuid7_refuses_anything_but_a_canonical_lower_case_uuid7(value: str) -> None:
    assert not ids.is_uuid7(value)
