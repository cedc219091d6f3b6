"""Training rows: proposals joined with their features and labels.

One row per ``(symbol, tf, bar, strategy)``: a duplicate key (e.g. a bar
delivered twice) keeps its first row and is counted in
:attr:`Dataset.duplicates`. The model sees the schema features in schema
order followed by :data:`EXTRA_FEATURES` (the proposed side and the strategy
code), so one entry model serves every strategy and both sides.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from decile.features import compute_offline
from decile.features.offline import OfflineFeatures
from decile.features.schema import SPECS
from decile.market.bars import Bars
from decile.market.timeframes import parse
from decile.strategies import STRATEGIES, Proposals, Strategy, propose
from decile.training.labels import LabelConfig, label_trades

__all__ = ["EXTRA_FEATURES", "Dataset", "build_dataset", "dataset_fingerprint", "from_features"]

F64 = npt.NDArray[np.float64]
EXTRA_FEATURES: Final[tuple[str, ...]] = ("side", "strategy_code")
DEFAULT_WARMUP: Final[int] = max(s.warmup for s in SPECS)
_FINGERPRINT_ARRAYS: Final = (
    "x",
    "ts",
    "code",
    "strategy",
    "side",
    "win",
    "realised_r",
    "mae_atr",
    "best_offset",
)
_CHUNK_ROWS: Final = 65_536


@dataclass(frozen=True, eq=False)
class Dataset:
    """Labelled proposals. ``x`` columns are ``feature_names``; one row per proposal.

    ``counts`` records what was dropped and why: ``proposals`` (raw),
    ``warmup`` (on a symbol's first bars), ``duplicates`` (same
    symbol/tf/bar/strategy), ``unlabelled`` (horizon past the data end or
    across a gap), ``rows`` (kept).
    """

    x: F64
    feature_names: tuple[str, ...]
    schema_version: str
    tf: str
    symbols: tuple[str, ...]
    code: npt.NDArray[np.int32]
    ts: npt.NDArray[np.int64]
    strategy: npt.NDArray[np.int16]
    strategy_ids: tuple[str, ...]
    side: npt.NDArray[np.int8]
    win: npt.NDArray[np.int8]
    realised_r: F64
    mae_atr: F64
    best_offset: F64
    label_config: LabelConfig
    counts: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, rows: npt.ArrayLike) -> Dataset:
        """A subset of rows (counts carried over unchanged)."""
        r = np.asarray(rows)
        return Dataset(
            self.x[r],
            self.feature_names,
            self.schema_version,
            self.tf,
            self.symbols,
            self.code[r],
            self.ts[r],
            self.strategy[r],
            self.strategy_ids,
            self.side[r],
            self.win[r],
            self.realised_r[r],
            self.mae_atr[r],
            self.best_offset[r],
            self.label_config,
            dict(self.counts),
        )

    def target(self, name: str) -> F64:
        """``win``, ``realised_r``, ``mae_atr`` or ``best_offset`` as float64."""
        return np.asarray(getattr(self, name), dtype=np.float64)


def from_features(
    feats: OfflineFeatures,
    high: F64,
    low: F64,
    close: F64,
    *,
    tf: str = "5m",
    labels: LabelConfig | None = None,
    strategies: tuple[Strategy, ...] = STRATEGIES,
    warmup: int | None = None,
) -> Dataset:
    """Build from features in ``(symbol, ts)`` order and the matching bar prices.

    Proposals on a symbol's first ``warmup`` bars (default: the schema's
    longest warm-up) are dropped and counted: the live service never scores a
    half-warm feature row, so the model must not learn from one either.
    """
    order_ok = np.all(
        (np.diff(feats.code) > 0) | ((np.diff(feats.code) == 0) & (np.diff(feats.ts) >= 0))
    )
    if not order_ok:
        raise ValueError("features must be in (symbol, ts) order: call OfflineFeatures.sorted()")
    labels = labels or LabelConfig()
    names = feats.names
    atr = feats.column("atr_14_pct") / 100.0 * close
    props = propose(feats.values, names, strategies)
    n_props = len(props)
    first_row = np.searchsorted(feats.code, feats.code, side="left")
    position = np.arange(len(feats.code)) - first_row  # the bar's index in its symbol
    min_pos = DEFAULT_WARMUP if warmup is None else warmup
    warm = position[props.row] >= min_pos
    n_cold = int((~warm).sum())
    props = Proposals(props.row[warm], props.strategy[warm], props.side[warm], props.strategy_ids)
    # (symbol, tf, bar, strategy): one tf per dataset, so (code, ts, strategy).
    key = np.stack(
        [
            feats.code[props.row].astype(np.int64),
            feats.ts[props.row],
            props.strategy.astype(np.int64),
        ],
        axis=1,
    )
    _, first = np.unique(key, axis=0, return_index=True)
    first.sort()
    rows, strat, side = props.row[first], props.strategy[first], props.side[first]
    duplicates = n_props - n_cold - len(first)
    lab = label_trades(
        feats.code, feats.ts, high, low, close, atr, rows, side, labels, parse(tf).ms
    )
    keep = lab.valid
    r = rows[keep]
    extra = np.stack([side[keep].astype(np.float64), strat[keep].astype(np.float64)], axis=1)
    x = np.asfortranarray(np.hstack([feats.values[r], extra]))
    return Dataset(
        x=x,
        feature_names=tuple(names) + EXTRA_FEATURES,
        schema_version=feats.schema_version,
        tf=tf,
        symbols=feats.symbols,
        code=feats.code[r].astype(np.int32),
        ts=feats.ts[r].astype(np.int64),
        strategy=strat[keep],
        strategy_ids=props.strategy_ids,
        side=side[keep],
        win=lab.win[keep],
        realised_r=lab.realised_r[keep],
        mae_atr=lab.mae_atr[keep],
        best_offset=lab.best_offset[keep],
        label_config=labels,
        counts={
            "proposals": n_props,
            "warmup": n_cold,
            "duplicates": int(duplicates),
            "unlabelled": lab.dropped,
            "rows": int(keep.sum()),
        },
    )


def build_dataset(
    bars: Bars,
    *,
    tf: str = "5m",
    labels: LabelConfig | None = None,
    strategies: tuple[Strategy, ...] = STRATEGIES,
    warmup: int | None = None,
) -> Dataset:
    """Features, proposals and labels for ``bars`` (any row order)."""
    feats = compute_offline(bars).sorted()
    src = feats.source_rows
    return from_features(
        feats,
        bars.high[src],
        bars.low[src],
        bars.close[src],
        tf=tf,
        labels=labels,
        strategies=strategies,
        warmup=warmup,
    )


def _update_array(h: hashlib._Hash, name: str, a: npt.NDArray[Any]) -> None:
    """Name, dtype, shape, then the values in C order in row chunks (bounded memory).

    Float NaNs are written as the one canonical NaN: NaN payload bits carry
    no meaning and must not change the fingerprint.
    """
    h.update(json.dumps([name, a.dtype.str, list(a.shape)]).encode())
    for i in range(0, max(len(a), 1), _CHUNK_ROWS):
        part = np.ascontiguousarray(a[i : i + _CHUNK_ROWS])
        if part.dtype.kind == "f":
            part = np.where(np.isnan(part), np.nan, part).astype(part.dtype)
        h.update(part.tobytes())


def dataset_fingerprint(ds: Dataset) -> str:
    """sha256 hex over the dataset's content.

    Covers ``x``, ``ts``, ``code``, ``strategy``, ``side``, the four labels,
    ``feature_names``, ``schema_version`` and ``tf``, plus ``symbols`` and
    ``strategy_ids`` (without them ``code`` and ``strategy`` mean nothing).
    One flipped label changes it; the same content in another memory layout
    (Fortran vs C order) does not.
    """
    h = hashlib.sha256(b"decile-dataset-v1\0")
    for name in _FINGERPRINT_ARRAYS:
        _update_array(h, name, np.asarray(getattr(ds, name)))
    meta = {
        "feature_names": list(ds.feature_names),
        "schema_version": ds.schema_version,
        "tf": ds.tf,
        "symbols": list(ds.symbols),
        "strategy_ids": list(ds.strategy_ids),
    }
    h.update(json.dumps(meta, sort_keys=True).encode())
    return h.hexdigest()
