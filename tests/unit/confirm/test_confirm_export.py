"""Confirm ONNX export: parity with numpy, stable bytes, metrics, the serving loader."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import onnx
import pytest
from confirm_support import Planted

import decile.confirm.export as export_module
from decile.confirm import FLOW_FEATURES, FLOW_SCHEMA_VERSION, flow_mismatch
from decile.confirm.export import (
    PARITY_ATOL,
    ConfirmParityError,
    export_confirm,
    predict_onnx,
    to_onnx,
)
from decile.registry import ModelVersion
from decile.registry.artifacts import ArtifactRef
from decile.serving import validate_model
from decile.training.calibration import calibration_from_dict, logit


def test_onnx_matches_numpy_within_1e_6(planted: Planted) -> None:
    m, x = planted.model, planted.ds.x
    rng = np.random.default_rng(5)
    wild = rng.uniform(-10, 10, size=(2000, len(FLOW_FEATURES)))  # every feature at its clip range
    for rows in (x, wild):
        diff = np.abs(predict_onnx(to_onnx(m), rows) - m.raw(rows))
        assert diff.max() <= 1e-6


def test_the_graph_is_matmul_add_sigmoid_on_a_float32_input(planted: Planted) -> None:
    proto = onnx.load_from_string(to_onnx(planted.model))
    ops = [n.op_type for n in proto.graph.node]
    assert ops[:3] == ["MatMul", "Add", "Sigmoid"]
    (inp,) = proto.graph.input
    assert inp.name == "input"
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert inp.type.tensor_type.shape.dim[1].dim_value == len(FLOW_FEATURES)
    assert [o.name for o in proto.graph.output] == ["probability", "probabilities"]


def test_the_same_model_exports_the_same_bytes(planted: Planted) -> None:
    assert to_onnx(planted.model) == to_onnx(planted.model)


def test_metrics_describe_the_model_like_the_entry_family(planted: Planted) -> None:
    data, doc = export_confirm(planted.model, planted.ds, planted.split, code_commit="abc")
    json.dumps(doc, allow_nan=False)  # metrics.json is strict JSON
    assert doc["family"] == "confirm"
    assert doc["objective"] == "binary"
    assert doc["features"] == list(FLOW_FEATURES)
    assert doc["schema_version"] == FLOW_SCHEMA_VERSION
    assert doc["flow_params"] == planted.config.flow_params()
    assert doc["model_sha256"] == hashlib.sha256(data).hexdigest() == doc["artifact"]["sha256"]
    assert doc["code_commit"] == "abc"
    assert doc["parity"]["max_abs_diff"] <= PARITY_ATOL
    assert doc["metrics"]["test"]["auc"] >= 0.8
    assert set(doc["metrics"]["test"]["by_atr_bucket"]) <= {"0", "1", "2"}
    assert doc["split"]["test_rows"] == len(planted.split.test)
    assert flow_mismatch(planted.config, doc) is None


def test_golden_pairs_replay_through_onnx_and_the_recorded_calibration(planted: Planted) -> None:
    data, doc = export_confirm(planted.model, planted.ds, planted.split)
    golden = doc["golden"]
    x = np.asarray(golden["input"])
    assert len(x) == 16
    assert np.abs(predict_onnx(data, x) - np.asarray(golden["raw_output"])).max() <= 1e-6
    cal = calibration_from_dict(doc["calibration"])
    out = cal(logit(np.asarray(golden["raw_output"])))
    assert np.allclose(out, golden["output"], atol=1e-12)


def test_an_export_that_disagrees_with_numpy_is_refused(
    planted: Planted, monkeypatch: pytest.MonkeyPatch
) -> None:
    off = replace(planted.model, intercept=planted.model.intercept + 0.5)
    monkeypatch.setattr(export_module, "to_onnx", lambda _m: to_onnx(off))
    with pytest.raises(ConfirmParityError, match="ONNX_PARITY_FAILED"):
        export_confirm(planted.model, planted.ds, planted.split)


def test_an_exported_version_passes_the_serving_loader(planted: Planted) -> None:
    data, doc = export_confirm(planted.model, planted.ds, planted.split)
    ref = ArtifactRef.of("file:///models/confirm/model.onnx", data)
    version = ModelVersion(
        id=uuid.uuid4(), family="confirm", version="1.0.0", status="production",
        parent_id=None, schema_version=doc["schema_version"], metrics=doc,
        artifact_uri=ref.uri, sha256=ref.sha256, size_bytes=ref.size,
        artifacts={"model.onnx": ref}, data_fingerprint=doc["data_fingerprint"],
        created_at=datetime.now(UTC),
    )
    loaded = validate_model(
        version, data, FLOW_FEATURES,
        expected_schema_version=FLOW_SCHEMA_VERSION, expected_strategies=None,
    )
    x = planted.ds.x[planted.split.test]
    assert np.abs(loaded.predict(x) - planted.model.predict(x)).max() <= 1e-6
