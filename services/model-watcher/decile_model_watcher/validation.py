"""What a live version is checked against, per family: pure rules beside the serving loader.

The loader (:func:`decile.serving.validate_model`) runs the shared checks
(sha256, ONNX session, input names and width from ``metrics.json``, golden
replay, finite outputs) against the input it is told to expect. Which input
that is depends on the family: entry and the quantile heads take the serving
feature row, confirm takes the flow row of its window. What the loader does
not check, this module adds: a binary family's outputs must be probabilities,
and a confirm version must say which flow (window, baseline, ATR edges) its
features were computed under, in a form the confirm service can compare.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from decile.confirm.config import ConfirmConfig
from decile.confirm.flow import FLOW_FEATURES, FLOW_SCHEMA_VERSION
from decile.features.schema import SCHEMA_VERSION
from decile.reasons import ReasonCode
from decile.registry import ModelVersion
from decile.serving import SERVED_FAMILIES, SERVING_FEATURES, LoadedModel, ModelRefused
from decile.strategies import STRATEGY_IDS

__all__ = [
    "CONFIRM",
    "WATCHED_FAMILIES",
    "ModelInput",
    "check_confirm_flow",
    "check_probabilities",
    "model_input",
]

CONFIRM: Final = "confirm"
WATCHED_FAMILIES: Final = (*SERVED_FAMILIES, CONFIRM)


@dataclass(frozen=True, slots=True)
class ModelInput:
    """The input a family's model must declare: columns, their schema version, strategy codes."""

    features: tuple[str, ...]
    schema_version: str
    strategies: tuple[str, ...] | None


def model_input(family: str) -> ModelInput:
    """Confirm takes :data:`FLOW_FEATURES` (no strategy codes); the others the serving row."""
    if family == CONFIRM:
        return ModelInput(FLOW_FEATURES, FLOW_SCHEMA_VERSION, None)
    return ModelInput(SERVING_FEATURES, SCHEMA_VERSION, STRATEGY_IDS)


def _refuse(code: ReasonCode, version: ModelVersion, what: str, **values: Any) -> ModelRefused:
    return ModelRefused(code, f"{version.label} ({version.id}): {what}", values)


def check_probabilities(version: ModelVersion, model: LoadedModel) -> None:
    """A binary model's golden outputs, raw and calibrated, must lie in [0, 1].

    The loader already proved them finite and equal to the recorded ones; a
    graph that lost its sigmoid reproduces its own (equally wrong) goldens, and
    a "probability" of 1.7 would pass every threshold downstream.
    """
    if not model.binary:
        return
    golden = version.metrics.get("golden")
    x = np.asarray(golden.get("input") if isinstance(golden, Mapping) else [], dtype=np.float64)
    raw = model.raw(x)
    p = model.calibrated(raw)
    bad = (raw < 0) | (raw > 1) | (p < 0) | (p > 1)
    if bad.any():
        raise _refuse(
            ReasonCode.MODEL_UNLOADABLE, version,
            f"{int(bad.sum())} of {len(raw)} golden outputs are not probabilities in [0, 1]",
            cause="OUTPUT_NOT_PROBABILITY", rows=len(raw), out_of_range=int(bad.sum()),
            min_raw=float(raw.min()), max_raw=float(raw.max()),
        )


def check_confirm_flow(version: ModelVersion) -> None:
    """A confirm version's ``flow_params`` must describe a valid :class:`ConfirmConfig`.

    The confirm service compares them with its own settings before using the
    model (:func:`decile.confirm.flow_mismatch`); a version without readable
    ones could never serve, so it is refused here, once, with the reason.
    """
    params = version.metrics.get("flow_params")
    try:
        if not isinstance(params, Mapping):
            raise TypeError("missing")
        config = ConfirmConfig(**params)
        if config.flow_params() != dict(params):
            raise ValueError(f"not in canonical form: {dict(params)}")
    except (TypeError, ValueError) as err:
        raise _refuse(
            ReasonCode.FEATURE_SCHEMA_MISMATCH, version, f"flow_params unusable: {err}"[:300],
            cause="FLOW_PARAMS_INVALID",
        ) from err
