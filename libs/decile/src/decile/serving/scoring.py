"""Score one cross-section: propose, one batched ONNX run per family, calibrate, select.

:func:`score_cycle` is the whole hot path of the inference service for one bar
close, vectorised over symbols (no Python loop per symbol or per proposal):

1. **Complete rows only.** A symbol whose feature row has any NaN (warm-up,
   or a missing input) is neither proposed nor scored this cycle; it is listed
   in :attr:`CycleScores.incomplete`. Training drops every proposal on a
   symbol's warm-up bars (``from_features``) so the model never learned from a
   half-warm row, and a row alone cannot tell warm-up NaN from a missing input:
   refusing both costs a missed proposal (after warm-up, about 0.14% of the
   rows of the bundled demo data), scoring one costs a bet on a row of a kind
   the model never saw.
2. **Proposals** by the same rules as training (:func:`decile.strategies.propose`),
   ordered by (symbol row, strategy code): the order training's dataset rows
   have within one bar, so ties break the same way.
3. **Model input** = the row's features in schema order, then ``side`` (+1/-1)
   and ``strategy_code``, as float32: exactly ``from_features``' columns.
4. **One ``session.run`` per family** over all proposals: ``p_win`` (entry,
   calibrated), ``sl_katr`` (risk), ``rr_target`` (rr), ``offset_katr``
   (offset); a family that is not loaded gives NaN.
5. **Score = calibrated p_win.** Why not expected R (``p_win * rr_target -
   (1 - p_win)``)? ``p_win`` is the probability of +1R before -1R; it says
   nothing about reaching ``rr_target``, so that product is not an expectation,
   and it would let the noisiest head (realised-R quantile) reorder the cycle.
   The entry model's offline evaluation (``selectivity_test``, its
   ``score_floor``, the top decile per cycle) was measured on calibrated p_win:
   serving ranks on the same number so those measurements describe what is
   served. Stop, target and order type are sized downstream from the heads.
6. **Selection**: rank the cycle's proposals by score (descending, ties by the
   order of step 2, as :func:`decile.training.report.top_decile`); keep the
   top ``ceil(top_fraction * n)`` (at least one) AND only those scoring
   ``>= floor``. This is ``top_decile_per_cycle`` then the floor: the decile is
   relative to the cycle, the floor is absolute, and a weak cycle may keep
   nothing. A non-finite score ranks last and is never kept.

A :class:`ModelSet` is immutable: the service swaps the whole set between
cycles, so a cycle is never scored by two versions of a family.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Final, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from decile.reasons import ReasonCode
from decile.serving.errors import BatchRefused, ModelRefused
from decile.serving.loader import LoadedModel
from decile.strategies import STRATEGIES, propose
from decile.training.dataset import EXTRA_FEATURES

__all__ = [
    "SERVED_FAMILIES",
    "TOP_FRACTION",
    "CycleScores",
    "ModelSet",
    "Selected",
    "Selection",
    "score_cycle",
    "select",
]

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
SERVED_FAMILIES: Final = ("entry", "risk", "rr", "offset")
TOP_FRACTION: Final = 0.1


@dataclass(frozen=True, eq=False)
class ModelSet:
    """The models one cycle is scored with: entry required, the quantile heads optional.

    Construction refuses a set whose models disagree on the input (features,
    schema version, strategy codes): ``ModelRefused`` with
    ``FEATURE_SCHEMA_MISMATCH`` / ``MODEL_INPUT_MISMATCH`` naming the odd one,
    so a new version that would not fit the others is rejected, not combined.
    """

    entry: LoadedModel
    risk: LoadedModel | None = None
    rr: LoadedModel | None = None
    offset: LoadedModel | None = None

    def __post_init__(self) -> None:
        for slot, model in self.models.items():
            if model.family != slot:
                raise ValueError(f"{model.label} given as the {slot} model")
        base = self.entry
        if base.features[-len(EXTRA_FEATURES):] != EXTRA_FEATURES:
            raise ModelRefused(
                ReasonCode.MODEL_INPUT_MISMATCH,
                f"{base.label}: the input does not end with {EXTRA_FEATURES}",
                {"got": ",".join(base.features[-len(EXTRA_FEATURES):])},
            )
        for model in self.models.values():
            if model.features != base.features or model.schema_version != base.schema_version:
                raise ModelRefused(
                    ReasonCode.FEATURE_SCHEMA_MISMATCH,
                    f"{model.label} and {base.label} take different feature rows",
                    {"model": model.label, "schema_version": model.schema_version,
                     "expected": base.schema_version, "width": len(model.features),
                     "expected_width": len(base.features)},
                )
            if model.strategy_ids != base.strategy_ids:
                raise ModelRefused(
                    ReasonCode.MODEL_INPUT_MISMATCH,
                    f"{model.label} and {base.label} number the strategies differently",
                    {"model": model.label, "got": ",".join(model.strategy_ids),
                     "expected": ",".join(base.strategy_ids)},
                )

    @property
    def models(self) -> dict[str, LoadedModel]:
        """The loaded models by family, in serving order."""
        out = {"entry": self.entry, "risk": self.risk, "rr": self.rr, "offset": self.offset}
        return {k: v for k, v in out.items() if v is not None}

    @property
    def features(self) -> tuple[str, ...]:
        """Model input columns (feature names + ``side``, ``strategy_code``)."""
        return self.entry.features

    @property
    def names(self) -> tuple[str, ...]:
        """The feature columns a batch must carry, in this order."""
        return self.entry.features[: -len(EXTRA_FEATURES)]

    @property
    def schema_version(self) -> str:
        return self.entry.schema_version

    @property
    def strategy_ids(self) -> tuple[str, ...]:
        return self.entry.strategy_ids

    def versions(self) -> dict[str, str]:
        """``{family: version}`` (``CandidateSignal.model_versions``)."""
        return {k: m.version for k, m in self.models.items()}

    def with_model(self, model: LoadedModel) -> ModelSet:
        """A new set with ``model`` in its family's slot (validated like any set)."""
        if model.family not in SERVED_FAMILIES:
            raise ValueError(f"{model.label}: family {model.family!r} is not scored per cycle")
        return replace(self, **{model.family: model})


class Selection(NamedTuple):
    """Ranks (1 = best), the kept mask, how many the top fraction allows, and its cut."""

    rank: I64
    kept: npt.NDArray[np.bool_]
    top_k: int
    threshold: float


def select(score: npt.ArrayLike, *, floor: float, top_fraction: float = TOP_FRACTION) -> Selection:
    """Top ``ceil(top_fraction * n)`` (at least 1) by score, then ``score >= floor``.

    Ranking is a stable sort on ``-score`` (``report.top_decile``'s): equal
    scores keep their input order. ``threshold`` is the score at rank
    ``top_k`` (NaN for an empty cycle); non-finite scores rank last, never kept.
    """
    if not 0.0 < top_fraction <= 1.0:
        raise ValueError(f"top_fraction must be in (0, 1], got {top_fraction}")
    if not math.isfinite(floor):
        raise ValueError(f"floor must be finite, got {floor}")
    s = np.asarray(score, dtype=np.float64)
    n = len(s)
    finite = np.isfinite(s)
    key = np.where(finite, s, -np.inf)
    order = np.argsort(-key, kind="mergesort")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(1, n + 1)
    top_k = max(1, int(np.ceil(n * top_fraction))) if n else 0
    threshold = float(key[order[top_k - 1]]) if top_k else float("nan")
    kept = (rank <= top_k) & finite & (key >= floor)
    return Selection(rank, kept, top_k, threshold)


@dataclass(frozen=True, slots=True)
class Selected:
    """One kept proposal, with what a ``CandidateSignal`` needs from scoring."""

    symbol: str
    row: int
    strategy: str
    side: Literal["long", "short"]
    p_win: float
    sl_katr: float
    rr_target: float
    offset_katr: float
    score: float
    rank: int
    cycle_size: int
    cycle_threshold: float
    score_floor: float


@dataclass(frozen=True, eq=False)
class CycleScores:
    """Every proposal of one cycle with its scores, rank and whether it is kept.

    Arrays are per proposal, in proposal order (symbol row, then strategy);
    ``row`` indexes ``symbols``; ``x`` holds the model input rows (feed them
    to a :class:`~decile.serving.drift.PsiMonitor`: the drift reference was
    taken over training proposals, not over all symbols). ``incomplete`` are
    the rows (symbols) skipped for a non-finite feature.
    """

    ts: datetime | int
    symbols: tuple[str, ...]
    schema_version: str
    versions: dict[str, str]
    strategy_ids: tuple[str, ...]
    row: I64
    strategy: npt.NDArray[np.int16]
    side: npt.NDArray[np.int8]
    x: F32
    p_win: F64
    sl_katr: F64
    rr_target: F64
    offset_katr: F64
    score: F64
    rank: I64
    kept: npt.NDArray[np.bool_]
    top_k: int
    threshold: float
    floor: float
    top_fraction: float
    incomplete: I64 = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.row)

    @property
    def n_kept(self) -> int:
        return int(self.kept.sum())

    @property
    def non_finite(self) -> int:
        """Proposals whose entry score was not finite (never kept; report them)."""
        return int((~np.isfinite(self.score)).sum())

    @property
    def incomplete_symbols(self) -> tuple[str, ...]:
        return tuple(self.symbols[i] for i in self.incomplete.tolist())

    def selected(self) -> list[Selected]:
        """The kept proposals, best first (a loop over the few kept only)."""
        idx = np.flatnonzero(self.kept)
        idx = idx[np.argsort(self.rank[idx], kind="mergesort")]
        n = len(self)
        return [
            Selected(
                symbol=self.symbols[int(self.row[i])],
                row=int(self.row[i]),
                strategy=self.strategy_ids[int(self.strategy[i])],
                side="long" if self.side[i] > 0 else "short",
                p_win=float(self.p_win[i]),
                sl_katr=float(self.sl_katr[i]),
                rr_target=float(self.rr_target[i]),
                offset_katr=float(self.offset_katr[i]),
                score=float(self.score[i]),
                rank=int(self.rank[i]),
                cycle_size=n,
                cycle_threshold=self.threshold,
                score_floor=self.floor,
            )
            for i in idx.tolist()
        ]


def _check_batch(
    x: F64, names: tuple[str, ...], symbols: tuple[str, ...], models: ModelSet,
    schema_version: str | None,
) -> None:
    if x.ndim != 2 or x.shape != (len(symbols), len(names)):
        raise BatchRefused(
            ReasonCode.FEATURE_SCHEMA_MISMATCH,
            f"matrix {x.shape} for {len(symbols)} symbols x {len(names)} names",
            {"shape": str(x.shape), "symbols": len(symbols), "names": len(names)},
        )
    expected = models.names
    if names != expected:
        first = next(
            (i for i, (a, b) in enumerate(zip(expected, names, strict=False)) if a != b),
            min(len(expected), len(names)),
        )
        raise BatchRefused(
            ReasonCode.FEATURE_SCHEMA_MISMATCH,
            f"batch columns differ from the models' input at column {first}",
            {"expected_width": len(expected), "got_width": len(names),
             "first_difference": first},
        )
    if schema_version is not None and schema_version != models.schema_version:
        raise BatchRefused(
            ReasonCode.FEATURE_SCHEMA_MISMATCH,
            "batch and models are on different feature schema versions",
            {"expected": models.schema_version, "got": schema_version},
        )


def _head(model: LoadedModel | None, x: F32) -> F64:
    return model.raw(x) if model is not None else np.full(len(x), np.nan)


def score_cycle(
    matrix: npt.ArrayLike,
    names: tuple[str, ...] | list[str],
    symbols: tuple[str, ...] | list[str],
    ts: datetime | int,
    models: ModelSet,
    *,
    floor: float,
    top_fraction: float = TOP_FRACTION,
    schema_version: str | None = None,
) -> CycleScores:
    """Propose, score and select one cross-section (one row per symbol, columns ``names``).

    ``schema_version`` (the batch's ``feature_schema``), when given, must
    equal the models'. Raises ``BatchRefused`` (``FEATURE_SCHEMA_MISMATCH``)
    for a batch the models cannot read; see the module docstring for the rest.
    """
    x = np.asarray(matrix, dtype=np.float64)
    cols, syms = tuple(names), tuple(symbols)
    _check_batch(x, cols, syms, models, schema_version)
    if not 0.0 < top_fraction <= 1.0 or not math.isfinite(floor):
        raise ValueError(f"floor={floor} must be finite and top_fraction={top_fraction} in (0, 1]")
    complete = np.isfinite(x).all(axis=1)
    ok = np.flatnonzero(complete)
    props = propose(x[ok], cols, STRATEGIES)
    if props.strategy_ids != models.strategy_ids:
        raise BatchRefused(
            ReasonCode.MODEL_INPUT_MISMATCH,
            "the models number the strategies differently from this code",
            {"expected": ",".join(props.strategy_ids), "got": ",".join(models.strategy_ids)},
        )
    rows = ok[props.row]
    order = np.lexsort((props.strategy, rows))
    rows, strategy, side = rows[order], props.strategy[order], props.side[order]
    width = len(cols)
    inp = np.empty((len(rows), width + len(EXTRA_FEATURES)), dtype=np.float32)
    inp[:, :width] = x[rows]
    inp[:, width] = side
    inp[:, width + 1] = strategy
    p_win = models.entry.predict(inp)
    chosen = select(p_win, floor=floor, top_fraction=top_fraction)
    return CycleScores(
        ts=ts,
        symbols=syms,
        schema_version=models.schema_version,
        versions=models.versions(),
        strategy_ids=props.strategy_ids,
        row=rows,
        strategy=strategy,
        side=side,
        x=inp,
        p_win=p_win,
        sl_katr=_head(models.risk, inp),
        rr_target=_head(models.rr, inp),
        offset_katr=_head(models.offset, inp),
        score=p_win,
        rank=chosen.rank,
        kept=chosen.kept,
        top_k=chosen.top_k,
        threshold=chosen.threshold,
        floor=floor,
        top_fraction=top_fraction,
        incomplete=np.flatnonzero(~complete).astype(np.int64),
    )
