"""Offline training: labels, datasets, chronological splits, models, metrics, export.

Public API::

    LabelConfig, label_trades(...) -> Labels               # +1R before -1R within H bars
    build_dataset(bars) -> Dataset                          # proposals x features x labels
    chronological_split(ts, horizon=, bar_ms=) -> Split     # 70/15/15 by time, embargoed
    walk_forward(ts, horizon=, bar_ms=) -> list[Split]
    fit_family(ds, split, "entry"|"risk"|"rr"|"offset") -> FittedModel
    train_family(ds, out_dir, family) -> metrics dict       # writes model.onnx + metrics.json

There is no random split anywhere, on purpose: bars are serially correlated
and a shuffled split leaks the future into training.
"""

from decile.training.dataset import EXTRA_FEATURES, Dataset, build_dataset, from_features
from decile.training.labels import OFFSETS, LabelConfig, Labels, label_trades
from decile.training.split import Split, chronological_split, walk_forward

__all__ = [
    "EXTRA_FEATURES",
    "OFFSETS",
    "Dataset",
    "LabelConfig",
    "Labels",
    "Split",
    "build_dataset",
    "chronological_split",
    "from_features",
    "label_trades",
    "walk_forward",
]
