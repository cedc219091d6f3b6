"""The confirm stage as a library: wait windows, flow features, decisions, training.

Pure: no broker, no database, no clock (``now`` is always an argument). The
confirm service is glue around it::

    config = ConfirmConfig(...)                                   # frozen, defaults documented
    window = Window.open(candidate, config, opened_at=now, history=recent_bars)
    window = window.add_bar(bar)                                  # per md.bars.<window_tf> row
    if window.complete:
        x = window.features(config, htf_trend_pct)                # FLOW_FEATURES row
        p = model.predict(x[None, :])[0]                          # calibrated P(R >= theta)
        event = decide(candidate, x, p, config, decided_at=now, window_bars=len(window.bars))
    elif window.expired(now):
        event = stale(window, config, now)                        # CONFIRM_STALE_WINDOW
    no_model(candidate, x, config, approve=True, decided_at=now)  # no usable model: pass or veto
    Window.from_dict(window.to_dict())                            # persisted across restarts
    flow_mismatch(config, metrics) -> Rejection | None            # model bound to this flow?

Training (same features by construction: rows come from :class:`Window`)::

    ds = build_confirm_dataset(candidates, outcomes, bars, config, theta=0.0)
    split = confirm_split(ds)                                     # chronological, embargoed
    model = fit_confirm(ds, split)                                # numpy L2 logistic + Platt
    onnx_bytes, metrics = decile.confirm.export.export_confirm(model, ds, split)

:mod:`decile.confirm.export` needs onnx (the ``training`` extra) and is not
imported here, so the service does not need it.
"""

from decile.confirm.config import ConfirmConfig
from decile.confirm.dataset import (
    ConfirmDataset,
    atr_edges,
    build_confirm_dataset,
    confirm_fingerprint,
    confirm_split,
)
from decile.confirm.decide import atr_pct, decide, no_model, stale
from decile.confirm.flow import (
    FLOW_FEATURES,
    FLOW_SCHEMA_VERSION,
    FLOW_SPECS,
    HTF_TREND_FEATURE,
    flow_features,
    flow_mismatch,
)
from decile.confirm.model import ConfirmModel, FitConfig, evaluate, fit_confirm
from decile.confirm.window import FlowBar, Window, flow_bars

__all__ = [
    "FLOW_FEATURES",
    "FLOW_SCHEMA_VERSION",
    "FLOW_SPECS",
    "HTF_TREND_FEATURE",
    "ConfirmConfig",
    "ConfirmDataset",
    "ConfirmModel",
    "FitConfig",
    "FlowBar",
    "Window",
    "atr_edges",
    "atr_pct",
    "build_confirm_dataset",
    "confirm_fingerprint",
    "confirm_split",
    "decide",
    "evaluate",
    "fit_confirm",
    "flow_bars",
    "flow_features",
    "flow_mismatch",
    "no_model",
    "stale",
]
