"""ONNX export of the confirm model and its ``metrics.json`` content (no files written).

The graph is built by hand with ``onnx.helper``: ``MatMul + Add + Sigmoid`` on
a float32 input named ``input`` gives ``probability`` ``(rows, 1)``, the raw
(uncalibrated) model output. A second output, ``probabilities`` ``(rows, 2)``
= ``[1 - p, p]``, is the binary-classifier shape the serving loader
(:func:`decile.serving.loader.validate_model`) looks for, so a confirm
version is checked and loaded like an entry one: sha256, features and schema
version (pass ``FLOW_FEATURES`` / ``FLOW_SCHEMA_VERSION``, strategies None),
calibration, golden replay.

The bytes are identical for the same model (fixed names, opset and IR
version), so the sha256 identifies it. :func:`export_confirm` refuses
(:class:`ConfirmParityError`) when ONNX Runtime and numpy differ by more than
1e-6 on the test rows. This module needs the ``training`` extra (onnx,
onnxruntime); the rest of :mod:`decile.confirm` does not.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from decile.confirm.dataset import ConfirmDataset, confirm_fingerprint
from decile.confirm.model import ConfirmModel, evaluate
from decile.training.calibration import CALIBRATION_INPUT
from decile.training.provenance import artifact
from decile.training.split import Split

__all__ = [
    "GOLDEN_ROWS",
    "ONNX_INPUT",
    "ONNX_OPSET",
    "PARITY_ATOL",
    "ConfirmParityError",
    "export_confirm",
    "predict_onnx",
    "to_onnx",
]

F64 = npt.NDArray[np.float64]
ONNX_INPUT: Final = "input"
ONNX_OUTPUT: Final = "probability"
ONNX_BINARY_OUTPUT: Final = "probabilities"
ONNX_OPSET: Final = 13
ONNX_IR_VERSION: Final = 8  # what every ONNX Runtime we deploy reads
GOLDEN_ROWS: Final = 16
PARITY_ATOL: Final = 1e-6
_QUANTILES: Final = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)


class ConfirmParityError(RuntimeError):
    """ONNX Runtime and the numpy model disagree beyond ``PARITY_ATOL``: nothing exported."""


def to_onnx(model: ConfirmModel) -> bytes:
    """Serialized ``sigmoid(input @ W + b)``; outputs ``probability`` and ``probabilities``."""
    k = len(model.coef)
    w = np.asarray(model.coef, dtype=np.float32).reshape(k, 1)
    init = [
        helper.make_tensor("W", TensorProto.FLOAT, [k, 1], w.ravel().tolist()),
        helper.make_tensor("B", TensorProto.FLOAT, [1], [model.intercept]),
        helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0]),
    ]
    nodes = [
        helper.make_node("MatMul", [ONNX_INPUT, "W"], ["xw"], name="matmul"),
        helper.make_node("Add", ["xw", "B"], ["margin"], name="add"),
        helper.make_node("Sigmoid", ["margin"], [ONNX_OUTPUT], name="sigmoid"),
        helper.make_node("Sub", ["one", ONNX_OUTPUT], ["complement"], name="complement"),
        helper.make_node(
            "Concat", ["complement", ONNX_OUTPUT], [ONNX_BINARY_OUTPUT], axis=1, name="concat"
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "decile_confirm",
        [helper.make_tensor_value_info(ONNX_INPUT, TensorProto.FLOAT, [None, k])],
        [
            helper.make_tensor_value_info(ONNX_OUTPUT, TensorProto.FLOAT, [None, 1]),
            helper.make_tensor_value_info(ONNX_BINARY_OUTPUT, TensorProto.FLOAT, [None, 2]),
        ],
        initializer=init,
    )
    proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)], producer_name="decile.confirm"
    )
    proto.ir_version = ONNX_IR_VERSION
    onnx.checker.check_model(proto)
    out: bytes = proto.SerializeToString()
    return out


def predict_onnx(onnx_bytes: bytes, x: npt.ArrayLike) -> F64:
    """The raw ``probability`` from ONNX Runtime on one thread, as float64."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])
    a = np.ascontiguousarray(x, dtype=np.float32)
    out = sess.run([ONNX_OUTPUT], {ONNX_INPUT: a})[0]
    return np.asarray(out, dtype=np.float64).reshape(-1)


def _json_safe(v: Any) -> Any:
    """NaN/inf -> None, numpy scalars -> Python, tuples -> lists."""
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_json_safe(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _reference(x: F64, names: tuple[str, ...]) -> dict[str, Any]:
    """Per-feature train quantiles: the drift (PSI) reference, in the entry model's layout."""
    feats = {
        n: {
            "quantiles": np.quantile(x[:, j], _QUANTILES).tolist() if len(x) else [],
            "null_rate": 0.0,  # flow features are finite by definition
        }
        for j, n in enumerate(names)
    }
    return {"levels": list(_QUANTILES), "features": feats}


def _window(ts: npt.NDArray[np.int64]) -> list[int] | None:
    return [int(ts.min()), int(ts.max())] if len(ts) else None


def export_confirm(
    model: ConfirmModel,
    ds: ConfirmDataset,
    split: Split,
    *,
    code_commit: str = "unknown",
) -> tuple[bytes, dict[str, Any]]:
    """``(model.onnx bytes, metrics.json content)``; the caller writes or registers them.

    ``code_commit``: the commit that trained it (pass
    :func:`decile.training.provenance.code_commit`; not read here, to keep
    this pure). Raises :class:`ConfirmParityError` when ONNX and numpy differ
    by more than ``PARITY_ATOL`` on the test rows (all rows if there are none).
    """
    data = to_onnx(model)
    check_rows = split.test if len(split.test) else np.arange(len(ds), dtype=np.int64)
    x_check = ds.x[check_rows]
    diff = np.abs(predict_onnx(data, x_check) - model.raw(x_check)) if len(x_check) else np.zeros(0)
    parity = {
        "rows": len(diff),
        "max_abs_diff": float(diff.max()) if len(diff) else 0.0,
        "tolerance": PARITY_ATOL,
    }
    if len(diff) and not parity["max_abs_diff"] <= PARITY_ATOL:
        raise ConfirmParityError(f"ONNX_PARITY_FAILED: {parity}")
    golden = x_check[:GOLDEN_ROWS].astype(np.float32).astype(np.float64)
    doc: dict[str, Any] = {
        "family": "confirm",
        "objective": "binary",
        "alpha": None,
        "target": f"realised_r >= {ds.theta}",
        "theta": ds.theta,
        "schema_version": ds.schema_version,
        "features": list(ds.feature_names),
        "flow_params": ds.flow_params,
        "tf": ds.tf,
        "dataset_counts": ds.counts,
        "data_fingerprint": confirm_fingerprint(ds),
        "code_commit": code_commit,
        "training_window_ms": _window(ds.ts[split.train]),
        "validation_window_ms": _window(ds.ts[split.validation]),
        "test_window_ms": _window(ds.ts[split.test]),
        "split": split.describe(),
        "hyperparameters": {"fit": asdict(model.fit_config)},
        "model": model.to_dict(),
        "calibration": {"on": CALIBRATION_INPUT, **model.calibration.to_dict()},
        "metrics": {
            "validation": evaluate(model, ds, split.validation),
            "test": evaluate(model, ds, split.test),
        },
        "parity": parity,
        "reference_distributions": _reference(ds.x[split.train], ds.feature_names),
        "golden": {
            "input": golden.tolist(),
            "raw_output": model.raw(golden).tolist(),
            "output": model.predict(golden).tolist(),
        },
        "onnx": {
            "input": ONNX_INPUT,
            "dtype": "float32",
            "outputs": [ONNX_OUTPUT, ONNX_BINARY_OUTPUT],
            "opset": ONNX_OPSET,
        },
        "artifact": artifact(data, "model.onnx"),
        "model_sha256": hashlib.sha256(data).hexdigest(),
    }
    return data, _json_safe(doc)
