"""Loading a version: every refusal has its reason code; a good one replays its goldens."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto
from serving_support import linear_onnx, version_of, with_bytes, with_metrics

from decile.events import ModelRejected
from decile.features import SCHEMA, SCHEMA_VERSION
from decile.reasons import ReasonCode
from decile.registry import LocalArtifacts, ModelVersion
from decile.serving import (
    SERVING_FEATURES,
    BatchRefused,
    LoadedModel,
    ModelRefused,
    load_version,
    validate_model,
)
from decile.strategies import STRATEGY_IDS
from decile.training.calibration import Platt
from decile.training.export import predict_onnx


def onnx_bytes(model_dirs: dict[str, Path], family: str) -> bytes:
    return (model_dirs[family] / "model.onnx").read_bytes()


def refused(
    version: ModelVersion,
    data: bytes,
    features: tuple[str, ...] = SERVING_FEATURES,
    **kw: object,
) -> ModelRefused:
    with pytest.raises(ModelRefused) as e:
        validate_model(version, data, features, **kw)  # type: ignore[arg-type]
    return e.value


def test_serving_features_are_the_schema_then_side_and_strategy_code() -> None:
    assert (*SCHEMA.names, "side", "strategy_code") == SERVING_FEATURES


def test_a_good_version_loads_with_its_metadata_and_replays_its_goldens(
    loaded: dict[str, LoadedModel], versions: dict[str, ModelVersion]
) -> None:
    entry = loaded["entry"]
    v = versions["entry"]
    assert (entry.family, entry.version, entry.id, entry.sha256) == (
        "entry", v.version, v.id, v.sha256,
    )
    assert entry.features == SERVING_FEATURES
    assert entry.schema_version == SCHEMA_VERSION
    assert entry.objective == "binary"
    assert entry.binary
    assert isinstance(entry.calibration, Platt)
    assert entry.strategy_ids == STRATEGY_IDS
    assert entry.created_at == entry.trained_at == v.created_at
    assert entry.data_until is not None
    assert set(entry.reference["features"]) == set(SERVING_FEATURES)
    opts = entry.session.get_session_options()
    assert (opts.intra_op_num_threads, opts.inter_op_num_threads) == (1, 1)
    golden = v.metrics["golden"]
    np.testing.assert_allclose(entry.raw(golden["input"]), golden["raw_output"], atol=1e-5)
    np.testing.assert_allclose(entry.predict(golden["input"]), golden["output"], atol=1e-5)
    for family in ("risk", "rr", "offset"):
        m = loaded[family]
        assert m.objective == "quantile"
        assert m.calibration is None
        assert m.alpha == versions[family].metrics["alpha"]
        g = versions[family].metrics["golden"]
        np.testing.assert_allclose(m.predict(g["input"]), g["raw_output"], atol=1e-5)


def test_raw_is_onnx_runtime_on_float32_rows(
    loaded: dict[str, LoadedModel], model_dirs: dict[str, Path], versions: dict[str, ModelVersion]
) -> None:
    x = np.asarray(versions["entry"].metrics["golden"]["input"])
    direct = predict_onnx(onnx_bytes(model_dirs, "entry"), x, binary=True)
    np.testing.assert_array_equal(loaded["entry"].raw(x), direct)
    assert loaded["entry"].raw(np.empty((0, len(SERVING_FEATURES)))).shape == (0,)
    with pytest.raises(BatchRefused) as e:
        loaded["entry"].raw(x[:, :-1])
    assert e.value.code == ReasonCode.MODEL_INPUT_MISMATCH


async def test_load_version_fetches_through_the_store_and_verifies_sha256(
    tmp_path: Path, model_dirs: dict[str, Path]
) -> None:
    store = LocalArtifacts(tmp_path / "store")
    data = onnx_bytes(model_dirs, "entry")
    ref = await store.put("entry/abc/model.onnx", data)
    v = version_of(model_dirs["entry"], "entry", uri=ref.uri)
    model = await load_version(v, store, SERVING_FEATURES)
    assert model.sha256 == ref.sha256

    path = Path(ref.uri.removeprefix("file://"))
    await asyncio.to_thread(path.write_bytes, data[:-1] + b"\x00")
    with pytest.raises(ModelRefused) as e:
        await load_version(v, store, SERVING_FEATURES)
    assert e.value.code == ReasonCode.MODEL_SHA_MISMATCH
    assert str(e.value).startswith("MODEL_SHA_MISMATCH: entry@1.0.0")
    rejection = e.value.rejection()
    assert (rejection.gate, rejection.code) == ("model_load", ReasonCode.MODEL_SHA_MISMATCH)
    event = ModelRejected(family="entry", version=v.version, reason=rejection)
    assert event.reason.values["expected"] == f"sha256={v.sha256}"

    gone = version_of(model_dirs["entry"], "entry", uri=(tmp_path / "nope.onnx").as_uri())
    with pytest.raises(ModelRefused) as e:
        await load_version(gone, store, SERVING_FEATURES)
    assert (e.value.code, e.value.values["cause"]) == (
        ReasonCode.MODEL_UNLOADABLE, "ARTIFACT_NOT_FOUND",
    )
    elsewhere = replace(v, artifact_uri="nats-os://bucket/entry/model.onnx")
    with pytest.raises(ModelRefused) as e:
        await load_version(elsewhere, store, SERVING_FEATURES)
    assert e.value.values["cause"] == "ARTIFACT_URI"


def test_bytes_that_are_not_the_registered_ones_are_refused(
    versions: dict[str, ModelVersion], model_dirs: dict[str, Path]
) -> None:
    data = onnx_bytes(model_dirs, "entry")
    err = refused(versions["entry"], data + b" ")
    assert err.code == ReasonCode.MODEL_SHA_MISMATCH
    # registered bytes, but metrics.json describes another model
    other = with_metrics(versions["entry"], model_sha256="0" * 64)
    assert refused(other, data).code == ReasonCode.MODEL_SHA_MISMATCH


@pytest.mark.parametrize("cut", [0.5, 0.9, 0.0])
def test_a_truncated_or_garbage_file_is_unloadable(
    versions: dict[str, ModelVersion], model_dirs: dict[str, Path], cut: float
) -> None:
    data = onnx_bytes(model_dirs, "entry")
    broken = data[: int(len(data) * cut)] if cut else b"not an onnx model at all"
    err = refused(with_bytes(versions["entry"], broken), broken)
    assert (err.code, err.values["cause"]) == (ReasonCode.MODEL_UNLOADABLE, "ONNX_LOAD_FAILED")


def test_a_model_trained_on_other_features_is_refused(
    versions: dict[str, ModelVersion], model_dirs: dict[str, Path]
) -> None:
    data = onnx_bytes(model_dirs, "entry")
    swapped = list(SERVING_FEATURES)
    swapped[3], swapped[4] = swapped[4], swapped[3]
    err = refused(versions["entry"], data, tuple(swapped))
    assert err.code == ReasonCode.FEATURE_SCHEMA_MISMATCH
    assert err.values["first_difference"] == 3
    assert err.values["expected_name"] == swapped[3]
    err = refused(versions["entry"], data, expected_schema_version="f1-000000000000")
    assert err.code == ReasonCode.FEATURE_SCHEMA_MISMATCH
    registered_elsewhere = replace(versions["entry"], schema_version="f0-other")
    assert refused(registered_elsewhere, data).code == ReasonCode.FEATURE_SCHEMA_MISMATCH
    older = with_metrics(versions["entry"], features=list(SERVING_FEATURES[:-3]))
    err = refused(older, data)
    assert (err.values["expected_width"], err.values["got_width"]) == (
        len(SERVING_FEATURES), len(SERVING_FEATURES) - 3,
    )


def test_strategy_codes_must_name_the_same_strategies(
    versions: dict[str, ModelVersion], model_dirs: dict[str, Path]
) -> None:
    data = onnx_bytes(model_dirs, "entry")
    reordered = with_metrics(versions["entry"], strategy_ids=list(reversed(STRATEGY_IDS)))
    assert refused(reordered, data).code == ReasonCode.MODEL_INPUT_MISMATCH
    validate_model(reordered, data, SERVING_FEATURES, expected_strategies=None)


@pytest.mark.parametrize(
    ("width_delta", "input_type"),
    [(-1, TensorProto.FLOAT), (0, TensorProto.DOUBLE), (1, TensorProto.FLOAT)],
)
def test_the_onnx_input_must_be_float32_of_the_feature_width(
    versions: dict[str, ModelVersion], width_delta: int, input_type: int
) -> None:
    data = linear_onnx(len(SERVING_FEATURES) + width_delta, input_type=input_type)
    err = refused(with_bytes(versions["risk"], data), data)
    assert err.code == ReasonCode.MODEL_INPUT_MISMATCH
    assert err.values["expected_width"] == len(SERVING_FEATURES)


def test_an_output_of_the_wrong_kind_or_objective_is_unloadable(
    versions: dict[str, ModelVersion], model_dirs: dict[str, Path]
) -> None:
    two_columns = linear_onnx(len(SERVING_FEATURES), out_width=2)
    err = refused(with_bytes(versions["risk"], two_columns), two_columns)
    assert (err.code, err.values["cause"]) == (ReasonCode.MODEL_UNLOADABLE, "OUTPUT_MISMATCH")
    data = onnx_bytes(model_dirs, "risk")
    err = refused(with_metrics(versions["risk"], objective="binary"), data)
    assert (err.code, err.values["cause"]) == (ReasonCode.MODEL_UNLOADABLE, "OBJECTIVE_MISMATCH")


def test_non_finite_golden_outputs_are_refused(versions: dict[str, ModelVersion]) -> None:
    w = np.zeros((len(SERVING_FEATURES), 1), dtype=np.float32)
    w[5, 0] = np.nan
    data = linear_onnx(len(SERVING_FEATURES), w)
    err = refused(with_bytes(versions["risk"], data), data)
    assert err.code == ReasonCode.MODEL_NON_FINITE_OUTPUT
    assert err.values["non_finite"] == len(versions["risk"].metrics["golden"]["input"])


def test_golden_outputs_must_replay_within_1e_5(
    versions: dict[str, ModelVersion], model_dirs: dict[str, Path]
) -> None:
    v = versions["entry"]
    data = onnx_bytes(model_dirs, "entry")
    golden = json.loads(json.dumps(v.metrics["golden"]))
    golden["raw_output"][3] += 2e-5
    err = refused(with_metrics(v, golden=golden), data)
    assert err.code == ReasonCode.MODEL_GOLDEN_MISMATCH
    assert err.values["mismatched"] == 1
    assert err.values["max_abs_diff"] == pytest.approx(2e-5, rel=0.05)
    risk = versions["risk"]
    near = json.loads(json.dumps(risk.metrics["golden"]))
    near["raw_output"][3] += 5e-6  # within the tolerance
    validate_model(with_metrics(risk, golden=near), onnx_bytes(model_dirs, "risk"),
                   SERVING_FEATURES)
    # a model that is not this metrics.json's: other model bytes, same goldens
    risk_data = onnx_bytes(model_dirs, "risk")
    err = refused(with_bytes(versions["rr"], risk_data), risk_data)
    assert err.code == ReasonCode.MODEL_GOLDEN_MISMATCH


def test_goldens_and_calibration_are_required_for_trust(
    versions: dict[str, ModelVersion], model_dirs: dict[str, Path]
) -> None:
    v = versions["entry"]
    data = onnx_bytes(model_dirs, "entry")
    err = refused(with_metrics(v, golden=None), data)
    assert (err.code, err.values["cause"]) == (ReasonCode.MODEL_GOLDEN_MISMATCH, "NO_GOLDEN")
    empty = {"input": [], "raw_output": [], "output": []}
    assert refused(with_metrics(v, golden=empty), data).values["cause"] == "GOLDEN_SHAPE"
    err = refused(with_metrics(v, calibration=None), data)
    assert (err.code, err.values["cause"]) == (ReasonCode.MODEL_UNLOADABLE, "CALIBRATION_INVALID")
    other_input = {**v.metrics["calibration"], "on": "raw probability"}
    assert refused(with_metrics(v, calibration=other_input), data).values["cause"] == (
        "CALIBRATION_INVALID"
    )
    tampered = {**v.metrics["calibration"], "a": v.metrics["calibration"]["a"] * 1.5}
    err = refused(with_metrics(v, calibration=tampered), data)
    assert (err.code, err.values["cause"]) == (
        ReasonCode.MODEL_GOLDEN_MISMATCH, "CALIBRATION_MISMATCH",
    )


def test_golden_nan_inputs_from_json_nulls_are_replayed(
    versions: dict[str, ModelVersion], model_dirs: dict[str, Path], loaded: dict[str, LoadedModel]
) -> None:
    # metrics.json writes NaN features as null; they must reach the model as NaN
    v = versions["entry"]
    golden = json.loads(json.dumps(v.metrics["golden"]))
    golden["input"][0][7] = None
    x = np.asarray(golden["input"], dtype=np.float64)
    golden["raw_output"] = predict_onnx(onnx_bytes(model_dirs, "entry"), x, binary=True).tolist()
    golden["output"] = loaded["entry"].calibrated(np.asarray(golden["raw_output"])).tolist()
    validate_model(with_metrics(v, golden=golden), onnx_bytes(model_dirs, "entry"),
                   SERVING_FEATURES)
