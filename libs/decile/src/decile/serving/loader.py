"""Load one registered model version for serving, and refuse it unless it provably fits.

A version is only as trustworthy as the checks run on the bytes actually
loaded, in this process, with this code's feature schema. :func:`load_version`
runs them all before anything is scored, cheapest first, and raises
:class:`~decile.serving.errors.ModelRefused` with a stable reason code on the
first failure:

| code | check |
|---|---|
| ``MODEL_SHA_MISMATCH`` | bytes hash to the registered sha256 (and ``metrics["model_sha256"]``) |
| ``MODEL_UNLOADABLE`` | artifact present, ONNX parses, output and calibration usable |
| ``FEATURE_SCHEMA_MISMATCH`` | ``metrics["features"]`` and schema version are the serving ones |
| ``MODEL_INPUT_MISMATCH`` | one float32 input of that width; strategy codes name the same rules |
| ``MODEL_NON_FINITE_OUTPUT`` | the golden inputs give finite outputs |
| ``MODEL_GOLDEN_MISMATCH`` | ... equal to the recorded raw outputs within 1e-5 |

Transient failures (network, I/O other than "not found") are NOT refusals:
they propagate as they are, and the caller retries the same version later.

The session is built fresh, with one intra-op and one inter-op thread: scoring
is one batched call per family per cycle, and one thread is both deterministic
and the fastest per call at these sizes (DESIGN, "Measured").
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from decile.events.base import Scalar
from decile.features.schema import SCHEMA, SCHEMA_VERSION, FeatureSchema
from decile.reasons import ReasonCode
from decile.registry.artifacts import ArtifactStore, fetch_verified
from decile.registry.errors import ArtifactCorrupt, ArtifactNotFound
from decile.registry.models import BINARY_FAMILIES, FAMILIES, ModelVersion
from decile.serving.drift import PsiMonitor
from decile.serving.errors import BatchRefused, ModelRefused
from decile.strategies import STRATEGY_IDS
from decile.training.calibration import Calibration, calibration_from_dict, logit
from decile.training.dataset import EXTRA_FEATURES

__all__ = [
    "GOLDEN_ATOL",
    "SERVING_FEATURES",
    "LoadedModel",
    "load_version",
    "serving_features",
    "session_options",
    "validate_model",
]

F64 = npt.NDArray[np.float64]
# Same tolerance as the export's ONNX/LightGBM parity: the goldens were recorded there.
GOLDEN_ATOL: Final = 1e-5


def serving_features(schema: FeatureSchema = SCHEMA) -> tuple[str, ...]:
    """The model input columns: the schema's features in schema order + side + strategy code.

    Exactly what :func:`decile.training.dataset.from_features` trains on.
    """
    return tuple(schema.names) + EXTRA_FEATURES


SERVING_FEATURES: Final = serving_features()


def session_options() -> ort.SessionOptions:
    """One intra-op and one inter-op thread, warnings only."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return opts


def _ms_to_datetime(ms: Any) -> datetime | None:
    if isinstance(ms, int | float) and not isinstance(ms, bool) and np.isfinite(ms):
        return datetime.fromtimestamp(ms / 1000.0, UTC)
    return None


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A validated version with its ONNX session; immutable, shareable across cycles.

    ``created_at`` is the registry's registration time (the trainer registers
    at the end of a run; metrics.json has no wall-clock training time), which
    is what model age and staleness count from. ``data_until`` is the last bar
    time the run evaluated on (end of its test window), when recorded.
    """

    family: str
    version: str
    id: UUID
    session: ort.InferenceSession
    features: tuple[str, ...]
    schema_version: str
    objective: str
    alpha: float | None
    calibration: Calibration | None
    reference: Mapping[str, Any]
    strategy_ids: tuple[str, ...]
    score_floor: float | None
    sha256: str
    created_at: datetime
    data_until: datetime | None
    input_name: str
    output_name: str

    @property
    def label(self) -> str:
        return f"{self.family}@{self.version}"

    @property
    def binary(self) -> bool:
        return self.objective == "binary"

    @property
    def trained_at(self) -> datetime:
        """Alias of ``created_at`` (see the class docstring)."""
        return self.created_at

    def drift_monitor(self, window: int = 5000, *, min_rows: int = 500) -> PsiMonitor:
        """A PSI monitor on this model's reference, columns = the model input (``features``)."""
        return PsiMonitor(self.reference, window, names=self.features, min_rows=min_rows)

    def raw(self, x: npt.ArrayLike) -> F64:
        """One ``session.run`` over all rows: the booster's raw output as float64.

        Binary: the uncalibrated class-1 probability; quantile: the quantile.
        Rows are cast to float32, as in training (the model's thresholds are on
        that grid). Raises ``BatchRefused`` (MODEL_INPUT_MISMATCH) on a wrong width.
        """
        a = np.ascontiguousarray(x, dtype=np.float32)
        if a.ndim != 2 or a.shape[1] != len(self.features):
            raise BatchRefused(
                ReasonCode.MODEL_INPUT_MISMATCH,
                f"{self.label} takes (rows, {len(self.features)}), got {a.shape}",
                {"expected_width": len(self.features), "got_shape": str(a.shape)},
            )
        if len(a) == 0:
            return np.empty(0, dtype=np.float64)
        out = np.asarray(self.session.run([self.output_name], {self.input_name: a})[0])
        col = out[:, 1] if self.binary else out.reshape(len(a), -1)[:, 0]
        return np.asarray(col, dtype=np.float64)

    def predict(self, x: npt.ArrayLike) -> F64:
        """Calibrated ``p_win`` for a binary family; the raw quantile otherwise."""
        return self.calibrated(self.raw(x))

    def calibrated(self, raw: F64) -> F64:
        """Apply the calibration to raw outputs (identity when there is none)."""
        if self.calibration is None:
            return raw
        return self.calibration(logit(raw))


# ------------------------------------------------------------------------ checks


def _refuse(code: ReasonCode, version: ModelVersion, what: str, **values: Scalar) -> ModelRefused:
    return ModelRefused(code, f"{version.label} ({version.id}): {what}", values)


def _first_difference(a: Sequence[str], b: Sequence[str]) -> int:
    return next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )


def _check_identity(
    version: ModelVersion, data: bytes, metrics: Mapping[str, Any]
) -> tuple[str, str]:
    """sha256 of the bytes, family and objective; returns (family, objective)."""
    actual = hashlib.sha256(data).hexdigest()
    recorded = metrics.get("model_sha256")
    if actual != version.sha256 or (recorded is not None and recorded != version.sha256):
        raise _refuse(
            ReasonCode.MODEL_SHA_MISMATCH, version,
            "the model bytes are not the ones registered",
            expected=version.sha256, actual=actual,
            metrics_sha256=None if recorded is None else str(recorded),
        )
    if version.family not in FAMILIES:
        raise _refuse(
            ReasonCode.MODEL_UNLOADABLE, version, f"unknown family {version.family!r}",
            cause="UNKNOWN_FAMILY",
        )
    expected = "binary" if version.family in BINARY_FAMILIES else "quantile"
    objective = metrics.get("objective")
    if objective != expected:
        raise _refuse(
            ReasonCode.MODEL_UNLOADABLE, version,
            f"objective {objective!r} is not {expected!r} for family {version.family}",
            cause="OBJECTIVE_MISMATCH", expected=expected, got=str(objective),
        )
    return version.family, expected


def _check_features(
    version: ModelVersion,
    metrics: Mapping[str, Any],
    expected: tuple[str, ...],
    schema_version: str | None,
    strategies: tuple[str, ...] | None,
) -> tuple[str, ...]:
    got = metrics.get("features")
    names = tuple(str(n) for n in got) if isinstance(got, list | tuple) else ()
    if names != expected:
        i = _first_difference(expected, names)
        raise _refuse(
            ReasonCode.FEATURE_SCHEMA_MISMATCH, version,
            f"trained on other features (first difference at column {i})",
            expected_width=len(expected), got_width=len(names), first_difference=i,
            expected_name=expected[i] if i < len(expected) else None,
            got_name=names[i] if i < len(names) else None,
        )
    recorded = metrics.get("schema_version")
    if recorded != version.schema_version or (
        schema_version is not None and recorded != schema_version
    ):
        raise _refuse(
            ReasonCode.FEATURE_SCHEMA_MISMATCH, version,
            "trained on another feature schema version",
            expected=schema_version, got=str(recorded), registered=version.schema_version,
        )
    if strategies is not None:
        ids = metrics.get("strategy_ids")
        got_ids = tuple(str(s) for s in ids) if isinstance(ids, list | tuple) else ()
        if got_ids != strategies:
            raise _refuse(
                ReasonCode.MODEL_INPUT_MISMATCH, version,
                "its strategy codes name other strategies than this code's",
                expected=",".join(strategies), got=",".join(got_ids),
            )
    return names


def _session(version: ModelVersion, data: bytes) -> ort.InferenceSession:
    try:
        return ort.InferenceSession(data, session_options(), providers=["CPUExecutionProvider"])
    # ONNX Runtime raises its own pybind classes (InvalidProtobuf, Fail, ...), no common base.
    except Exception as err:
        raise _refuse(
            ReasonCode.MODEL_UNLOADABLE, version, f"ONNX Runtime cannot load it: {err}"[:300],
            cause="ONNX_LOAD_FAILED", size=len(data),
        ) from err


def _check_io(
    version: ModelVersion, sess: ort.InferenceSession, width: int, binary: bool
) -> tuple[str, str]:
    """The single float32 (rows, width) input, and the output holding the prediction."""
    inputs = sess.get_inputs()
    shape = list(inputs[0].shape) if len(inputs) == 1 else []
    if (
        len(inputs) != 1
        or inputs[0].type != "tensor(float)"
        or len(shape) != 2
        or shape[1] != width
    ):
        got = ";".join(f"{i.name}:{i.type}{list(i.shape)}" for i in inputs)
        raise _refuse(
            ReasonCode.MODEL_INPUT_MISMATCH, version,
            f"needs one tensor(float) input [rows, {width}], has {got or 'none'}",
            expected_width=width, got=got,
        )
    wanted = 2 if binary else 1
    for out in sess.get_outputs():
        oshape = list(out.shape)
        if out.type == "tensor(float)" and len(oshape) == 2 and oshape[1] == wanted:
            return inputs[0].name, out.name
    got = ";".join(f"{o.name}:{o.type}{list(o.shape)}" for o in sess.get_outputs())
    raise _refuse(
        ReasonCode.MODEL_UNLOADABLE, version,
        f"no float output of shape [rows, {wanted}] (outputs: {got})",
        cause="OUTPUT_MISMATCH", got=got,
    )


def _calibration(
    version: ModelVersion, metrics: Mapping[str, Any], binary: bool
) -> Calibration | None:
    """Binary families must carry theirs: an uncalibrated, class-balanced score is no p_win."""
    if not binary:
        return None
    doc = metrics.get("calibration")
    try:
        if not isinstance(doc, Mapping):
            raise ValueError("missing")
        return calibration_from_dict(doc)
    except (ValueError, KeyError, TypeError) as err:
        raise _refuse(
            ReasonCode.MODEL_UNLOADABLE, version, f"calibration unusable: {err}",
            cause="CALIBRATION_INVALID",
        ) from err


def _as_array(v: Any) -> F64:
    """JSON numbers (None for NaN, as metrics.json writes them) as float64."""
    return np.asarray(v if v is not None else [], dtype=np.float64)


def _check_golden(version: ModelVersion, model: LoadedModel, metrics: Mapping[str, Any]) -> None:
    golden = metrics.get("golden")
    if not isinstance(golden, Mapping):
        raise _refuse(
            ReasonCode.MODEL_GOLDEN_MISMATCH, version, "no golden input/output pairs to replay",
            cause="NO_GOLDEN",
        )
    try:
        x = _as_array(golden.get("input"))
        expected = _as_array(golden.get("raw_output"))
        expected_out = _as_array(golden.get("output"))
    except (TypeError, ValueError) as err:
        raise _refuse(
            ReasonCode.MODEL_GOLDEN_MISMATCH, version, f"golden pairs unreadable: {err}",
            cause="GOLDEN_UNREADABLE",
        ) from err
    rows = len(x)
    if rows == 0 or x.ndim != 2 or expected.shape != (rows,) or expected_out.shape != (rows,):
        raise _refuse(
            ReasonCode.MODEL_GOLDEN_MISMATCH, version,
            f"golden pairs malformed: input {x.shape}, raw_output {expected.shape}, "
            f"output {expected_out.shape}",
            cause="GOLDEN_SHAPE",
        )
    try:
        raw = model.raw(x)
    except BatchRefused as err:
        raise _refuse(
            ReasonCode.MODEL_GOLDEN_MISMATCH, version, f"golden inputs do not fit: {err}",
            cause="GOLDEN_SHAPE",
        ) from err
    except Exception as err:  # ONNX Runtime's own error classes again
        raise _refuse(
            ReasonCode.MODEL_UNLOADABLE, version, f"ONNX Runtime fails on the goldens: {err}"[:300],
            cause="ONNX_RUN_FAILED",
        ) from err
    out = model.calibrated(raw)
    bad = ~(np.isfinite(raw) & np.isfinite(out))
    if bad.any():
        raise _refuse(
            ReasonCode.MODEL_NON_FINITE_OUTPUT, version,
            f"{int(bad.sum())} of {rows} golden inputs give a non-finite output",
            rows=rows, non_finite=int(bad.sum()), first_row=int(np.flatnonzero(bad)[0]),
        )
    diff = np.abs(raw - expected)
    over = ~(diff <= GOLDEN_ATOL)  # a NaN expectation counts as a mismatch
    if over.any():
        raise _refuse(
            ReasonCode.MODEL_GOLDEN_MISMATCH, version,
            f"{int(over.sum())} of {rows} golden outputs differ by more than {GOLDEN_ATOL}",
            rows=rows, mismatched=int(over.sum()), tolerance=GOLDEN_ATOL,
            max_abs_diff=float(np.nanmax(diff)) if np.isfinite(diff).any() else None,
        )
    if model.calibration is not None:
        # the calibration rebuilt here, on the recorded raw outputs, must give the recorded p_win
        cal_diff = np.abs(model.calibrated(expected) - expected_out)
        if not (cal_diff <= GOLDEN_ATOL).all():
            raise _refuse(
                ReasonCode.MODEL_GOLDEN_MISMATCH, version,
                "the rebuilt calibration does not reproduce the golden p_win",
                cause="CALIBRATION_MISMATCH", rows=rows, tolerance=GOLDEN_ATOL,
                max_abs_diff=float(np.nanmax(cal_diff)) if np.isfinite(cal_diff).any() else None,
            )


def validate_model(
    version: ModelVersion,
    data: bytes,
    expected_features: Sequence[str],
    *,
    expected_schema_version: str | None = SCHEMA_VERSION,
    expected_strategies: Sequence[str] | None = STRATEGY_IDS,
) -> LoadedModel:
    """Every check of the module docstring on ``data`` (model.onnx) and ``version.metrics``.

    Synchronous and CPU-bound (session build + golden replay, a few ms to tens
    of ms): :func:`load_version` runs it in a worker thread. ``None`` for
    ``expected_schema_version`` / ``expected_strategies`` skips that check
    (for a family whose input is not the serving feature row).
    """
    metrics: Mapping[str, Any] = version.metrics if isinstance(version.metrics, Mapping) else {}
    family, objective = _check_identity(version, data, metrics)
    features = _check_features(
        version, metrics, tuple(expected_features), expected_schema_version,
        None if expected_strategies is None else tuple(expected_strategies),
    )
    binary = objective == "binary"
    calibration = _calibration(version, metrics, binary)
    sess = _session(version, data)
    input_name, output_name = _check_io(version, sess, len(features), binary)
    alpha, floor = metrics.get("alpha"), metrics.get("score_floor")
    reference = metrics.get("reference_distributions")
    windows = [metrics.get(k) for k in ("test_window_ms", "validation_window_ms",
                                        "training_window_ms")]
    ends = [w[1] for w in windows if isinstance(w, list | tuple) and len(w) == 2]
    model = LoadedModel(
        family=family,
        version=version.version,
        id=version.id,
        session=sess,
        features=features,
        schema_version=version.schema_version,
        objective=objective,
        alpha=float(alpha) if isinstance(alpha, int | float) else None,
        calibration=calibration,
        reference=reference if isinstance(reference, Mapping) else {},
        strategy_ids=tuple(str(s) for s in metrics.get("strategy_ids") or ()),
        score_floor=float(floor) if isinstance(floor, int | float) else None,
        sha256=version.sha256,
        created_at=version.created_at,
        data_until=_ms_to_datetime(ends[0]) if ends else None,
        input_name=input_name,
        output_name=output_name,
    )
    _check_golden(version, model, metrics)
    return model


async def load_version(
    version: ModelVersion,
    store: ArtifactStore,
    expected_features: Sequence[str],
    *,
    expected_schema_version: str | None = SCHEMA_VERSION,
    expected_strategies: Sequence[str] | None = STRATEGY_IDS,
) -> LoadedModel:
    """Fetch model.onnx (sha256-verified), build a fresh session and validate it.

    Raises ``ModelRefused`` for a version that must not serve. Anything else
    (a network or disk error) propagates unchanged: retry the same version.
    """
    try:
        data = await fetch_verified(store, version.artifact_ref)
    except ArtifactCorrupt as err:
        raise _refuse(
            ReasonCode.MODEL_SHA_MISMATCH, version, str(err),
            uri=err.uri, expected=err.expected, actual=err.actual,
        ) from err
    except ArtifactNotFound as err:
        raise _refuse(
            ReasonCode.MODEL_UNLOADABLE, version, str(err),
            cause="ARTIFACT_NOT_FOUND", uri=err.uri,
        ) from err
    except ValueError as err:  # an uri this store cannot read (e.g. nats-os:// on disk)
        raise _refuse(
            ReasonCode.MODEL_UNLOADABLE, version, str(err),
            cause="ARTIFACT_URI", uri=version.artifact_uri,
        ) from err
    return await asyncio.to_thread(
        validate_model, version, data, expected_features,
        expected_schema_version=expected_schema_version,
        expected_strategies=expected_strategies,
    )
