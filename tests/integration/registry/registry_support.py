"""Minimal metrics.json documents and registrations for the registry tests."""

from __future__ import annotations

import hashlib
from typing import Any

from decile.registry import ArtifactRef, ModelVersion, Promotion, Registry


def entry_metrics(
    auc: float | None = 0.62, ece: float | None = 0.02, paired: dict[str, Any] | None = None
) -> dict[str, Any]:
    doc: dict[str, Any] = {"family": "entry", "metrics": {"test": {"auc": auc, "ece": ece}}}
    if paired is not None:
        doc["paired"] = paired
    return doc


def quantile_metrics(
    pinball: float = 0.8, constant: float = 1.0, paired: dict[str, Any] | None = None
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "family": "risk",
        "metrics": {"test": {"pinball": pinball, "pinball_best_constant": constant}},
    }
    if paired is not None:
        doc["paired"] = paired
    return doc


def paired(production: ModelVersion, candidate: float, prod: float, key: str = "auc") -> dict[
    str, Any
]:
    """The pipeline's paired evaluation against ``production`` on the same rows."""
    return {
        "production_id": str(production.id),
        "production_version": production.version,
        "rows": 1000,
        "comparable": True,
        "candidate": {key: candidate},
        "production": {key: prod},
    }


def ref(name: str, data: bytes) -> ArtifactRef:
    return ArtifactRef.of(f"file:///models/{hashlib.sha256(data).hexdigest()}/{name}", data)


async def add(
    reg: Registry,
    family: str = "entry",
    *,
    schema: str = "s1",
    metrics: dict[str, Any] | None = None,
    parent: ModelVersion | None = None,
) -> ModelVersion:
    """Register a version with small real artifact references."""
    onnx = f"onnx {family} {schema} {metrics}".encode()
    model = ref("model.onnx", onnx)
    return await reg.register(
        family,
        schema_version=schema,
        metrics=metrics if metrics is not None else entry_metrics(),
        artifact=model,
        artifacts={"model.onnx": model, "metrics.json": ref("metrics.json", b"{}")},
        data_fingerprint="fp-" + family,
        parent_id=parent.id if parent else None,
    )


def assert_history_replays(history: list[Promotion], versions: list[ModelVersion]) -> None:
    """Each row starts where the model's previous one ended; the last gives today's status."""
    status: dict[Any, str] = {}
    for p in history:
        assert p.from_status == status.get(p.model_id, "staging"), p
        status[p.model_id] = p.to_status
    for v in versions:
        assert status.get(v.id, "staging") == v.status, v.label
    assert list(status.values()).count("production") <= 1
