"""Offline training: labels, datasets, chronological splits, models, metrics, export.

Public API::

    LabelConfig, label_trades(...) -> Labels               # +1R before -1R within H bars
    build_dataset(bars) -> Dataset                          # proposals x features x labels
    chronological_split(ts, horizon=, bar_ms=) -> Split     # 70/15/15 by time, embargoed
    walk_forward(ts, horizon=, bar_ms=) -> list[Split]
    fit_family(ds, split, "entry"|"risk"|"rr"|"offset") -> FittedModel
    train_family(ds, out_dir, family) -> metrics dict       # model.onnx, metrics.json, report.md
    tune(ds, split, family, trials=) -> (TrainConfig, summary)  # Optuna, validation only
    Platt | Isotonic, calibration_from_dict(d)              # entry calibration (serving too)
    dataset_fingerprint(ds) -> sha256 hex                    # provenance in metrics.json

There is no random split anywhere, on purpose: bars are serially correlated
and a shuffled split leaks the future into training.
"""

from decile.training.calibration import Calibration, Isotonic, Platt, calibration_from_dict
from decile.training.dataset import (
    EXTRA_FEATURES,
    Dataset,
    build_dataset,
    dataset_fingerprint,
    from_features,
)
from decile.training.labels import OFFSETS, LabelConfig, Labels, label_trades
from decile.training.split import Split, chronological_split, walk_forward

__all__ = [
    "EXTRA_FEATURES",
    "OFFSETS",
    "Calibration",
    "Dataset",
    "Isotonic",
    "LabelConfig",
    "Labels",
    "Platt",
    "Split",
    "build_dataset",
    "calibration_from_dict",
    "chronological_split",
    "dataset_fingerprint",
    "from_features",
    "label_trades",
    "walk_forward",
]
