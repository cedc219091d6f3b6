"""The model-watcher's pure rules: which promotion an activation belongs to, what it replaced,
and that the same activation always gets the same event id (so JetStream drops repeats)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from decile.events.base import Rejection
from decile.reasons import ReasonCode
from decile.registry import ModelVersion, Promotion
from decile_model_watcher.activation import activated, previous_holder, promotion_into, rejected

T0 = datetime(2026, 11, 1, tzinfo=UTC)
SHA = "a" * 64


def version(label: str, vid: UUID) -> ModelVersion:
    return ModelVersion(id=vid, family="entry", version=label, status="production",
                        parent_id=None, schema_version="f1", metrics={},
                        artifact_uri=f"file:///m/{label}/model.onnx", sha256=SHA, size_bytes=1,
                        artifacts={}, data_fingerprint="", created_at=T0)


def move(pid: int, vid: UUID, label: str, frm: str, to: str, action: str = "promote") -> Promotion:
    return Promotion(id=pid, model_id=vid, family="entry", version=label, from_status=frm,
                     to_status=to, action=action, actor="t", reason="", gate=None,
                     created_at=T0 + timedelta(minutes=pid))


V1, V2 = uuid4(), uuid4()
HISTORY = [
    move(1, V1, "1.0.0", "staging", "production"),
    move(2, V1, "1.0.0", "production", "archived", "archive"),
    move(3, V2, "1.1.0", "staging", "production"),
    move(4, V2, "1.1.0", "production", "archived", "rollback"),
    move(5, V1, "1.0.0", "archived", "production", "rollback"),
]


def test_an_activation_belongs_to_the_last_promotion_into_its_status() -> None:
    assert promotion_into(HISTORY, V1, "production") == HISTORY[4]
    assert promotion_into(HISTORY, V2, "production") == HISTORY[2]
    assert promotion_into(HISTORY, V2, "shadow") is None


def test_the_previous_holder_comes_from_the_history_not_from_memory() -> None:
    assert previous_holder(HISTORY, HISTORY[0]) is None  # the first production
    assert previous_holder(HISTORY, HISTORY[2]) == "1.0.0"
    assert previous_holder(HISTORY, HISTORY[4]) == "1.1.0"  # the rollback restores 1.0.0


def test_the_same_activation_gets_the_same_id_and_a_rollback_a_new_one() -> None:
    v1 = version("1.0.0", V1)
    once = activated(v1, "production", HISTORY[:1], producer="model-watcher")
    again = activated(v1, "production", HISTORY[:1], producer="model-watcher")
    restored = activated(v1, "production", HISTORY, producer="model-watcher")
    assert once.id == again.id
    assert once == again
    assert restored.id != once.id
    assert restored.previous_version == "1.1.0"


def test_a_rejection_names_its_reason_and_is_idempotent_too() -> None:
    reason = Rejection(gate="golden", code=ReasonCode.MODEL_GOLDEN_MISMATCH, values={"rows": 3})
    v2 = version("1.1.0", V2)
    first = rejected(v2, "production", HISTORY, reason, producer="model-watcher")
    second = rejected(v2, "production", HISTORY, reason, producer="model-watcher")
    assert first.id == second.id
    assert first.reason.code == ReasonCode.MODEL_GOLDEN_MISMATCH
