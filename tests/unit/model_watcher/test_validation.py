"""Which input each family is validated against, and the checks the loader leaves to the watcher:
binary outputs are probabilities, a confirm version names a usable flow."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from decile.confirm import FLOW_FEATURES, FLOW_SCHEMA_VERSION
from decile.confirm.export import predict_onnx
from decile.features.schema import SCHEMA_VERSION
from decile.reasons import ReasonCode
from decile.registry import ModelVersion
from decile.registry.artifacts import ArtifactRef
from decile.serving import SERVING_FEATURES, LoadedModel, ModelRefused, validate_model
from decile.testing.models import train_tiny_confirm
from decile.training.calibration import calibration_from_dict, logit
from decile_model_watcher.settings import WatcherSection
from decile_model_watcher.validation import (
    WATCHED_FAMILIES,
    check_confirm_flow,
    check_probabilities,
    model_input,
)


@pytest.fixture(scope="module")
def confirm_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, dict[str, Any]]:
    out = train_tiny_confirm(tmp_path_factory.mktemp("confirm"))
    return (out / "model.onnx").read_bytes(), json.loads((out / "metrics.json").read_text())


def version_of(data: bytes, doc: dict[str, Any], family: str = "confirm") -> ModelVersion:
    ref = ArtifactRef("file:///m/model.onnx", hashlib.sha256(data).hexdigest(), len(data))
    return ModelVersion(
        id=uuid.uuid4(), family=family, version="1.0.0", status="production", parent_id=None,
        schema_version=doc["schema_version"], metrics=doc, artifact_uri=ref.uri,
        sha256=ref.sha256, size_bytes=ref.size, artifacts={"model.onnx": ref},
        data_fingerprint="", created_at=datetime.now(UTC),
    )


def load(version: ModelVersion, data: bytes) -> LoadedModel:
    """What the watcher runs: the loader against the family's own input."""
    expected = model_input(version.family)
    return validate_model(
        version, data, expected.features, expected_schema_version=expected.schema_version,
        expected_strategies=expected.strategies,
    )


def without_sigmoid(data: bytes, doc: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """The same graph with Identity for Sigmoid, its goldens re-recorded and its sha256 new:
    every loader check passes, yet its outputs are margins, not probabilities."""
    proto = onnx.load_from_string(data)
    for node in proto.graph.node:
        if node.op_type == "Sigmoid":
            node.op_type = "Identity"
    broken = proto.SerializeToString()
    x = np.asarray(doc["golden"]["input"])
    raw = predict_onnx(broken, x)
    cal = calibration_from_dict(doc["calibration"])
    golden = {"input": x.tolist(), "raw_output": raw.tolist(),
              "output": cal(logit(raw)).tolist()}
    sha = hashlib.sha256(broken).hexdigest()
    return broken, {**doc, "golden": golden, "model_sha256": sha}


def test_confirm_is_validated_against_the_flow_row_and_the_others_against_the_serving_row(
) -> None:
    assert WATCHED_FAMILIES == ("entry", "risk", "rr", "offset", "confirm")
    confirm = model_input("confirm")
    assert (confirm.features, confirm.schema_version, confirm.strategies) == (
        FLOW_FEATURES, FLOW_SCHEMA_VERSION, None)
    for family in ("entry", "risk", "rr", "offset"):
        assert model_input(family).features == SERVING_FEATURES
        assert model_input(family).schema_version == SCHEMA_VERSION


def test_a_trained_confirm_version_passes_every_check(
    confirm_files: tuple[bytes, dict[str, Any]],
) -> None:
    data, doc = confirm_files
    version = version_of(data, doc)
    model = load(version, data)
    assert model.features == FLOW_FEATURES
    assert model.binary
    check_probabilities(version, model)
    check_confirm_flow(version)


def test_a_confirm_model_offered_as_entry_is_refused_for_its_features(
    confirm_files: tuple[bytes, dict[str, Any]],
) -> None:
    data, doc = confirm_files
    with pytest.raises(ModelRefused) as err:
        load(version_of(data, doc, family="entry"), data)
    assert err.value.code == ReasonCode.FEATURE_SCHEMA_MISMATCH


def test_a_confirm_graph_without_its_sigmoid_is_refused_as_no_probability(
    confirm_files: tuple[bytes, dict[str, Any]],
) -> None:
    data, doc = without_sigmoid(*confirm_files)
    version = version_of(data, doc)
    model = load(version, data)  # the loader's own checks cannot tell
    with pytest.raises(ModelRefused) as err:
        check_probabilities(version, model)
    assert err.value.code == ReasonCode.MODEL_UNLOADABLE
    assert err.value.values["cause"] == "OUTPUT_NOT_PROBABILITY"
    assert err.value.values["out_of_range"] > 0


@pytest.mark.parametrize(
    "flow",
    [
        None,
        {"window_bars": 1, "window_tf": "7m", "baseline_bars": 30, "atr_edges": [0.25, 0.6]},
        {"window_bars": 1, "window_tf": "5m", "baseline_bars": 30, "atr_edges": [0.6, 0.25]},
        {"window_bars": 1, "window_tf": "5m", "baseline_bars": 30},
        {"window_bars": 1, "window_tf": "5m", "baseline_bars": 30, "atr_edges": [0.25],
         "extra": 1},
    ],
    ids=["missing", "unknown-timeframe", "edges-not-increasing", "no-edges", "unknown-key"],
)
def test_a_confirm_version_without_a_usable_flow_is_refused(
    flow: dict[str, Any] | None, confirm_files: tuple[bytes, dict[str, Any]],
) -> None:
    data, doc = confirm_files
    with pytest.raises(ModelRefused) as err:
        check_confirm_flow(version_of(data, {**doc, "flow_params": flow}))
    assert err.value.code == ReasonCode.FEATURE_SCHEMA_MISMATCH
    assert err.value.values["cause"] == "FLOW_PARAMS_INVALID"


def test_the_watcher_announces_confirm_by_default_and_refuses_unknown_families() -> None:
    assert "confirm" in WatcherSection().families
    with pytest.raises(ValueError, match="watched"):
        WatcherSection(families=("entry", "bogus"))


def test_the_tiny_confirm_version_is_deterministic(tmp_path: Path) -> None:
    a = train_tiny_confirm(tmp_path / "a")
    b = train_tiny_confirm(tmp_path / "b")
    assert (a / "model.onnx").read_bytes() == (b / "model.onnx").read_bytes()
