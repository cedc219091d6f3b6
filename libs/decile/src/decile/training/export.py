"""ONNX export, parity against LightGBM, and the model directory.

:func:`train_family` is the one entry point: dataset -> split -> fit ->
evaluate -> export -> parity -> ``model.onnx`` + ``metrics.json``. It refuses
(``ParityError``, nothing written) when ONNX and LightGBM disagree by more
than ``1e-5`` on more than 0.01% of test rows or select a different top decile.

``model.onnx`` takes ``input``: float32 ``(rows, features)`` in
``metrics.json["features"]`` order and outputs the booster's raw prediction
(entry: ``probabilities[:, 1]``, uncalibrated; apply ``calibration``;
quantile families: ``variable[:, 0]``).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import onnxmltools
import onnxruntime as ort
from onnxmltools.convert.common.data_types import FloatTensorType

from decile.market.timeframes import parse
from decile.training import report as metrics_report
from decile.training.calibration import CALIBRATION_INPUT
from decile.training.dataset import Dataset
from decile.training.importance import feature_importance
from decile.training.models import FittedModel, TrainConfig, fit_family
from decile.training.provenance import artifact, code_commit, dataset_fingerprint
from decile.training.report import top_decile
from decile.training.split import Split, chronological_split, walk_forward
from decile.training.writeup import TestBlock, report_file_names, write_report

__all__ = [
    "GOLDEN_ROWS",
    "ParityError",
    "onnx_parity",
    "predict_onnx",
    "to_onnx",
    "top_decile_agreement",
    "train_family",
    "walk_forward_metrics",
]

F64 = npt.NDArray[np.float64]
GOLDEN_ROWS: Final = 16
PARITY_ATOL: Final = 1e-5
PARITY_MIN_FRACTION: Final = 0.9999
_QUANTILES: Final = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)


class ParityError(RuntimeError):
    """ONNX and LightGBM disagree beyond tolerance: the model is not exported."""


def to_onnx(model: FittedModel) -> bytes:
    """Serialized ONNX graph of the booster (no ZipMap; float32 input named ``input``).

    Byte-identical for the same booster, so the sha256 identifies the model.
    """
    n = len(model.feature_names)
    onx = onnxmltools.convert_lightgbm(
        model.booster, initial_types=[("input", FloatTensorType([None, n]))], zipmap=False
    )
    onx.graph.name = f"decile_{model.family.name}"  # the converter draws a random uuid
    # the converter lists opsets in set order, which follows the process's hash seed
    opsets = sorted(onx.opset_import, key=lambda o: (o.domain, o.version))
    del onx.opset_import[:]
    onx.opset_import.extend(opsets)
    out: bytes = onx.SerializeToString()
    return out


def predict_onnx(onnx_bytes: bytes, x: npt.ArrayLike, binary: bool) -> F64:
    """Raw model output from ONNX Runtime, one thread (deterministic)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])
    outs = sess.run(None, {"input": np.asarray(x, dtype=np.float32)})
    if binary:
        return np.asarray(outs[1][:, 1], dtype=np.float64)
    return np.asarray(outs[0], dtype=np.float64).reshape(-1)


def onnx_parity(model: FittedModel, onnx_bytes: bytes, x: npt.ArrayLike) -> dict[str, Any]:
    """Max abs diff, fraction of rows within 1e-5, and whether the top deciles match."""
    ref = model.raw(x)
    got = predict_onnx(onnx_bytes, x, model.family.objective == "binary")
    diff = np.abs(ref - got)
    return {
        "rows": len(diff),
        "max_abs_diff": float(diff.max()) if len(diff) else 0.0,
        "fraction_within_tol": float((diff <= PARITY_ATOL).mean()) if len(diff) else 1.0,
        "tolerance": PARITY_ATOL,
        **top_decile_agreement(ref, got),
    }


def top_decile_agreement(ref: F64, got: F64) -> dict[str, Any]:
    """Whether both engines select the same top decile.

    Quantile heads predict from few distinct leaves, so many rows tie at the
    decile cut; a 1e-7 float32 difference then reorders tied rows without
    changing any score that matters. Rows that differ only because they tie
    (within the tolerance) with the cut are counted, not failed.
    """
    a, b = top_decile(ref), top_decile(got)
    differ = np.flatnonzero(a != b)
    cut = float(ref[a].min()) if a.any() else 0.0
    ties = int((np.abs(ref[differ] - cut) <= PARITY_ATOL).sum())
    return {
        "same_top_decile": ties == len(differ),
        "top_decile_rows_swapped_at_tied_cut": ties,
    }


def _clean(v: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _evaluate(model: FittedModel, ds: Dataset, rows: npt.NDArray[np.int64]) -> dict[str, Any]:
    x = ds.x[rows]
    y = ds.target(model.family.target)[rows]
    if len(rows) == 0:
        return {"rows": 0}
    if model.family.objective == "binary":
        p = model.predict(x)
        return {
            "rows": len(rows),
            "base_rate": float(y.mean()),
            "auc": metrics_report.auc(y, p),
            "pr_auc": metrics_report.pr_auc(y, p),
            "log_loss": metrics_report.log_loss(y, p),
            "ece": metrics_report.ece(y, p),
            "mean_p_win": float(p.mean()),
        }
    q = model.predict(x)
    alpha = float(model.family.alpha or 0.5)
    return {
        "rows": len(rows),
        "alpha": alpha,
        "pinball": metrics_report.pinball(y, q, alpha),
        # the test block's own alpha-quantile: the best any constant could score
        "pinball_best_constant": metrics_report.pinball(
            y, np.full(len(y), np.quantile(y, alpha)), alpha
        ),
        "coverage": float((y <= q).mean()),
    }


def _reference(x: F64, names: tuple[str, ...]) -> dict[str, Any]:
    """Per-feature train quantiles and null rate: the drift (PSI) reference."""
    out = {}
    for j, n in enumerate(names):
        col = x[:, j]
        ok = col[np.isfinite(col)]
        qs = np.quantile(ok, _QUANTILES).tolist() if len(ok) else [None] * len(_QUANTILES)
        out[n] = {"quantiles": qs, "null_rate": float(1 - len(ok) / max(len(col), 1))}
    return {"levels": list(_QUANTILES), "features": out}


def walk_forward_metrics(
    ds: Dataset,
    family: str = "entry",
    *,
    n_windows: int = 4,
    config: TrainConfig | None = None,
) -> list[dict[str, Any]]:
    """Test metrics of one model per expanding walk-forward fold (nothing exported).

    How stable is the edge over time? One good fold and three at chance is
    not a model.
    """
    sp_list = walk_forward(
        ds.ts, horizon=ds.label_config.horizon, bar_ms=parse(ds.tf).ms, n_windows=n_windows
    )
    out = []
    for sp in sp_list:
        model = fit_family(ds, sp, family, config)
        out.append({"split": sp.describe(), "test": _evaluate(model, ds, sp.test)})
    return _clean(out)  # type: ignore[no-any-return]


def _window(ts: npt.NDArray[np.int64]) -> list[int] | None:
    return [int(ts.min()), int(ts.max())] if len(ts) else None


def train_family(
    ds: Dataset,
    out_dir: str | Path,
    family: str = "entry",
    *,
    config: TrainConfig | None = None,
    split: Split | None = None,
    score_floor: float = 0.5,
    report: bool = True,
    tuning: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train, evaluate and export one family into ``out_dir``; returns metrics.json's content.

    ``split`` defaults to the 70/15/15 chronological split with an embargo of
    the label horizon. Raises ``LeakageError`` or ``ParityError`` (nothing written).
    With ``report`` (default) ``report.md`` and its PNGs are written beside the
    model (see :mod:`.writeup`). ``tuning``: the summary from
    :func:`decile.training.tuning.tune`, recorded as is.
    """
    cfg = config or TrainConfig()
    bar_ms = parse(ds.tf).ms
    sp = split or chronological_split(ds.ts, horizon=ds.label_config.horizon, bar_ms=bar_ms)
    model = fit_family(ds, sp, family, cfg)
    onnx_bytes = to_onnx(model)
    x_test = ds.x[sp.test]
    parity = onnx_parity(model, onnx_bytes, x_test)
    if parity["fraction_within_tol"] < PARITY_MIN_FRACTION or not parity["same_top_decile"]:
        raise ParityError(f"ONNX_PARITY_FAILED: {parity}")
    binary = model.family.objective == "binary"
    score_test = model.predict(x_test)
    metrics: dict[str, Any] = {
        "validation": _evaluate(model, ds, sp.validation),
        "test": _evaluate(model, ds, sp.test),
    }
    if binary and len(sp.test):
        metrics["selectivity_test"] = metrics_report.selectivity(
            score_test,
            ds.win[sp.test],
            ds.realised_r[sp.test],
            ds.strategy[sp.test],
            ds.strategy_ids,
            floor=score_floor,
            ts=ds.ts[sp.test],
        )
        metrics["score_floor"] = score_floor
    golden = x_test[:GOLDEN_ROWS].astype(np.float32)
    doc: dict[str, Any] = {
        "family": model.family.name,
        "objective": model.family.objective,
        "alpha": model.family.alpha,
        "target": model.family.target,
        "schema_version": ds.schema_version,
        "features": list(ds.feature_names),
        "tf": ds.tf,
        "strategy_ids": list(ds.strategy_ids),
        "label_config": asdict(ds.label_config),
        "dataset_counts": ds.counts,
        "data_fingerprint": dataset_fingerprint(ds),
        "code_commit": code_commit(),
        "training_window_ms": _window(ds.ts[sp.train]),
        "validation_window_ms": _window(ds.ts[sp.validation]),
        "test_window_ms": _window(ds.ts[sp.test]),
        "split": sp.describe(),
        "hyperparameters": {"config": cfg.to_dict(), "lightgbm": model.params},
        "tuning": tuning,
        "best_iteration": model.best_iteration,
        "calibration": (
            {"on": CALIBRATION_INPUT, **model.calibration.to_dict()} if model.calibration else None
        ),
        "metrics": metrics,
        "importance": feature_importance(model, x_test),
        "parity": parity,
        "reference_distributions": _reference(ds.x[sp.train], ds.feature_names),
        "golden": {
            "input": golden.astype(np.float64).tolist(),
            "raw_output": model.raw(golden).tolist(),
            "output": model.predict(golden).tolist(),
        },
        "onnx": {"input": "input", "dtype": "float32", "opset_note": "onnxmltools default"},
        "artifact": artifact(onnx_bytes, "model.onnx"),
        "model_sha256": hashlib.sha256(onnx_bytes).hexdigest(),
        "report_files": report_file_names(binary, len(sp.test) > 0) if report else [],
    }
    doc = _clean(doc)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.onnx").write_bytes(onnx_bytes)
    if report:
        target = ds.target(model.family.target)[sp.test]
        block = TestBlock(score_test, target, ds.realised_r[sp.test], ds.ts[sp.test])
        write_report(out, doc, block)
    # insertion order, not sorted keys: the importance rankings stay in rank order
    (out / "metrics.json").write_text(json.dumps(doc, indent=2, allow_nan=False))
    return doc
