"""The gate's checks as data: every check returned, missing metrics named."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from registry_support import entry_metrics, paired, quantile_metrics, ref

from decile.registry import GateConfig, ModelVersion, check_gate


def version(family: str, metrics: dict[str, Any], status: str = "staging") -> ModelVersion:
    model = ref("model.onnx", family.encode())
    return ModelVersion(
        id=uuid4(), family=family, version="1.0.0", status=status, parent_id=None,
        schema_version="s1", metrics=metrics, artifact_uri=model.uri, sha256=model.sha256,
        size_bytes=model.size, artifacts={"model.onnx": model}, data_fingerprint="",
        created_at=datetime.now(UTC),
    )


def failed(checks: list[Any]) -> list[tuple[str, str]]:
    return [(c.code, c.metric) for c in checks if not c.passed]


def test_every_check_is_returned_and_paired_only_applies_to_production() -> None:
    prod = version("entry", entry_metrics(), "production")
    cand = version("entry", entry_metrics(auc=0.5, paired=paired(prod, 0.5, 0.6)))
    shadow = check_gate(cand, "shadow", prod)
    assert [c.name for c in shadow] == ["auc_floor", "ece_max"]
    assert failed(shadow) == [("AUC_BELOW_FLOOR", "metrics.test.auc")]
    production = check_gate(cand, "production", prod)
    assert [c.name for c in production] == ["auc_floor", "ece_max", "paired_auc"]
    assert failed(production)[-1] == ("PAIRED_AUC_WORSE", "paired.candidate.auc")
    assert [c.name for c in check_gate(cand, "production", None)] == ["auc_floor", "ece_max"]


def test_nan_and_missing_metrics_are_refused_by_name() -> None:
    nan = version("entry", entry_metrics(auc=float("nan")))
    assert failed(check_gate(nan, "shadow", None))[0] == ("METRIC_MISSING", "metrics.test.auc")
    bare = version("offset", {"metrics": {"test": {"pinball": 0.5}}})
    assert failed(check_gate(bare, "shadow", None)) == [
        ("METRIC_MISSING", "metrics.test.pinball_best_constant")
    ]
    prod = version("rr", quantile_metrics(), "production")
    half = paired(prod, 0.9, 1.0, key="pinball")
    half["production"] = {}
    cand = version("rr", quantile_metrics(paired=half))
    assert failed(check_gate(cand, "production", prod)) == [
        ("METRIC_MISSING", "paired.production.pinball")
    ]


def test_confirm_uses_the_binary_floors_and_thresholds_are_configurable() -> None:
    confirm = version("confirm", entry_metrics(auc=0.57))
    assert not failed(check_gate(confirm, "shadow", None))
    strict = GateConfig(min_auc=0.6)
    assert failed(check_gate(confirm, "shadow", None, strict)) == [
        ("AUC_BELOW_FLOOR", "metrics.test.auc")
    ]


def test_an_incomparable_paired_evaluation_passes_only_when_allowed() -> None:
    prod = version("entry", entry_metrics(), "production")
    doc = {**paired(prod, 0, 0), "comparable": False, "reason": "FEATURE_SCHEMA_CHANGED"}
    cand = version("entry", entry_metrics(paired=doc))
    (check,) = [c for c in check_gate(cand, "production", prod) if not c.passed]
    assert check.code == "PAIRED_EVALUATION_NOT_COMPARABLE"
    assert "FEATURE_SCHEMA_CHANGED" in check.detail
    assert not failed(check_gate(cand, "production", prod, GateConfig(allow_incomparable=True)))
