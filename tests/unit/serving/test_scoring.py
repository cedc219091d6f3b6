"""Scoring a cross-section: the served numbers are the models' own, the selection is the
offline one, and a half-warm row is never scored."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from serving_support import CONFIG, pseudo_cross_section

from decile.events import CandidateSignal
from decile.features import SCHEMA
from decile.features.offline import OfflineFeatures
from decile.market.bars import Bars
from decile.market.timeframes import parse
from decile.reasons import ReasonCode
from decile.serving import (
    BatchRefused,
    CycleScores,
    LoadedModel,
    ModelRefused,
    ModelSet,
    score_cycle,
    select,
)
from decile.strategies import STRATEGIES, STRATEGY_IDS, propose
from decile.training.dataset import Dataset, from_features
from decile.training.export import predict_onnx
from decile.training.models import FittedModel, fit_family
from decile.training.report import top_decile
from decile.training.split import chronological_split

Cross = tuple[np.ndarray, tuple[str, ...], tuple[str, ...]]
TS = datetime(2024, 1, 2, 3, 5, tzinfo=UTC)


@pytest.fixture(scope="module")
def cross(demo: tuple[OfflineFeatures, Bars]) -> Cross:
    return pseudo_cross_section(demo[0])


@pytest.fixture(scope="module")
def scores(cross: Cross, model_set: ModelSet) -> CycleScores:
    return score_cycle(*cross, TS, model_set, floor=0.5)


@pytest.fixture(scope="module")
def entry_booster(train_ds: Dataset) -> FittedModel:
    """The entry booster exactly as train_family fitted it (same rows, split, seed)."""
    sp = chronological_split(
        train_ds.ts, horizon=train_ds.label_config.horizon, bar_ms=parse(train_ds.tf).ms
    )
    return fit_family(train_ds, sp, "entry", CONFIG)


def test_scores_are_the_lightgbm_and_onnx_predictions_of_the_proposals(
    cross: Cross, scores: CycleScores, entry_booster: FittedModel,
    model_dirs: dict[str, Path], loaded: dict[str, LoadedModel],
) -> None:
    matrix, names, _symbols = cross
    # independent: the rules on the whole matrix, the model input built by hand
    props = propose(matrix, names)
    expected = sorted(zip(props.row.tolist(), props.strategy.tolist(), props.side.tolist(),
                          strict=True))
    assert len(scores) == len(expected) > 100
    got = list(zip(scores.row.tolist(), scores.strategy.tolist(), scores.side.tolist(),
                   strict=True))
    assert got == expected  # ordered by (symbol row, strategy)
    x = np.array([[*matrix[r], side, s] for r, s, side in expected])
    np.testing.assert_array_equal(scores.x, x.astype(np.float32))

    np.testing.assert_allclose(scores.p_win, entry_booster.predict(x), atol=1e-5)
    raw = predict_onnx((model_dirs["entry"] / "model.onnx").read_bytes(), x, binary=True)
    cal = loaded["entry"].calibration
    assert cal is not None
    np.testing.assert_allclose(scores.p_win, cal(np.log(raw / (1 - raw))), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(scores.score, scores.p_win)
    for family, head in (("risk", scores.sl_katr), ("rr", scores.rr_target),
                         ("offset", scores.offset_katr)):
        direct = predict_onnx((model_dirs[family] / "model.onnx").read_bytes(), x, binary=False)
        np.testing.assert_array_equal(head, direct)
    assert scores.versions == {"entry": "1.0.0", "risk": "1.0.0", "rr": "1.0.0",
                               "offset": "1.0.0"}
    assert scores.strategy_ids == STRATEGY_IDS
    assert scores.non_finite == 0


def top_by_python_sort(score: np.ndarray, fraction: float) -> set[int]:
    n = len(score)
    k = max(1, math.ceil(n * fraction)) if n else 0
    return set(sorted(range(n), key=lambda i: (-score[i], i))[:k])


@pytest.mark.parametrize("fraction", [0.1, 0.05, 0.25, 1.0])
@pytest.mark.parametrize("floor_q", [0.0, 0.5, 0.95, 1.0])
def test_the_kept_set_is_the_top_fraction_of_the_cycle_then_the_floor(
    cross: Cross, model_set: ModelSet, fraction: float, floor_q: float
) -> None:
    base = score_cycle(*cross, TS, model_set, floor=0.0, top_fraction=fraction)
    floor = float(np.quantile(base.p_win, floor_q)) + (1e-9 if floor_q == 1.0 else 0.0)
    sc = score_cycle(*cross, TS, model_set, floor=floor, top_fraction=fraction)
    p = sc.p_win
    top = top_by_python_sort(p, fraction)
    kept = {i for i in top if p[i] >= floor}
    assert set(np.flatnonzero(sc.kept).tolist()) == kept
    if fraction == 0.1:
        np.testing.assert_array_equal(sc.kept, top_decile(p) & (p >= floor))
    order = sorted(range(len(p)), key=lambda i: (-p[i], i))
    np.testing.assert_array_equal(sc.rank[order], np.arange(1, len(p) + 1))
    assert sc.top_k == len(top)
    assert sc.threshold == p[order[sc.top_k - 1]]
    chosen = sc.selected()
    assert [c.rank for c in chosen] == sorted(c.rank for c in chosen)
    assert all(c.score >= floor and c.score >= sc.threshold for c in chosen)
    if floor_q == 1.0:
        assert chosen == []


def test_ties_are_broken_by_proposal_order_as_in_training() -> None:
    rng = np.random.default_rng(3)
    for n in (1, 2, 9, 10, 11, 57, 400):
        score = rng.choice([0.3, 0.55, 0.6, 0.6, 0.7], n)  # quantile-head-like plateaus
        sel = select(score, floor=0.0)
        np.testing.assert_array_equal(sel.kept, top_decile(score))
        assert sel.top_k == max(1, math.ceil(n * 0.1))
        assert set(np.flatnonzero(sel.kept).tolist()) == top_by_python_sort(score, 0.1)
    empty = select(np.empty(0), floor=0.5)
    assert (empty.top_k, len(empty.rank), math.isnan(empty.threshold)) == (0, 0, True)
    with_nan = select(np.array([np.nan, 0.9, 0.8]), floor=0.0, top_fraction=1.0)
    assert with_nan.rank.tolist() == [3, 1, 2]
    assert with_nan.kept.tolist() == [False, True, True]
    with pytest.raises(ValueError, match="top_fraction"):
        select(np.ones(3), floor=0.5, top_fraction=0.0)
    with pytest.raises(ValueError, match="floor"):
        select(np.ones(3), floor=float("nan"))


def test_a_row_with_a_nan_feature_is_neither_proposed_nor_scored(
    cross: Cross, scores: CycleScores, model_set: ModelSet
) -> None:
    matrix, names, symbols = cross
    used = {f for s in STRATEGIES for f in s.needs}
    unused = next(i for i, n in enumerate(names) if n not in used)
    victim = int(scores.row[0])
    warm_up = matrix.copy()
    warm_up[victim, unused] = np.nan  # the rules alone would still propose it
    assert victim in propose(warm_up, names).row
    sc = score_cycle(warm_up, names, symbols, TS, model_set, floor=0.5)
    assert victim not in sc.row
    assert sc.incomplete.tolist() == [victim]
    assert sc.incomplete_symbols == (symbols[victim],)
    same = scores.row != victim
    np.testing.assert_array_equal(sc.row, scores.row[same])
    np.testing.assert_array_equal(sc.p_win, scores.p_win[same])
    all_warming = score_cycle(np.full_like(matrix[:5], np.nan), names, symbols[:5], TS,
                              model_set, floor=0.5)
    assert (len(all_warming), all_warming.n_kept, all_warming.top_k) == (0, 0, 0)
    assert math.isnan(all_warming.threshold)
    assert all_warming.selected() == []
    assert len(all_warming.incomplete) == 5


def test_serving_builds_exactly_the_rows_training_built(
    demo: tuple[OfflineFeatures, Bars], model_set: ModelSet
) -> None:
    feats, bars = demo
    src = feats.source_rows
    ds = from_features(feats, bars.high[src], bars.low[src], bars.close[src])
    times = np.unique(ds.ts)[-300:-10]  # warm, and labelled (the horizon ends in the data)
    compared = nan_rows = 0
    for t in times:
        at = np.flatnonzero(feats.ts == t)  # this bar's rows, in symbol-code order
        syms = tuple(feats.symbols[c] for c in feats.code[at])
        sc = score_cycle(feats.values[at], feats.names, syms, int(t), model_set, floor=0.0)
        serving = {(int(feats.code[at][r]), int(s)): i
                   for i, (r, s) in enumerate(zip(sc.row, sc.strategy, strict=True))}
        training = {(int(ds.code[i]), int(ds.strategy[i])): i for i in np.flatnonzero(ds.ts == t)}
        for key, i in training.items():
            if key not in serving:  # training kept a post-warm-up row with a missing input
                assert not np.isfinite(ds.x[i, : len(SCHEMA)]).all()
                nan_rows += 1
                continue
            j = serving[key]
            np.testing.assert_array_equal(sc.x[j], ds.x[i].astype(np.float32))
            compared += 1
        assert set(serving) <= set(training)
        # same order as the dataset's rows of this bar: (symbol, strategy)
        assert [k for k in sorted(serving, key=serving.__getitem__)] == sorted(serving)
    assert compared > 100
    assert nan_rows <= compared * 0.01


class CountingSession:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.batches: list[int] = []

    def run(self, outputs: Any, feeds: dict[str, np.ndarray]) -> Any:
        self.batches.append(len(next(iter(feeds.values()))))
        return self.inner.run(outputs, feeds)


def test_one_session_run_per_family_per_cycle(
    cross: Cross, loaded: dict[str, LoadedModel]
) -> None:
    counted = {f: replace(m, session=CountingSession(m.session)) for f, m in loaded.items()}
    models = ModelSet(counted["entry"], counted["risk"], counted["rr"], counted["offset"])
    sc = score_cycle(*cross, TS, models, floor=0.5)
    for m in counted.values():
        assert m.session.batches == [len(sc)]  # type: ignore[attr-defined]


def test_missing_heads_give_nan_and_the_entry_alone_selects(
    cross: Cross, loaded: dict[str, LoadedModel], scores: CycleScores
) -> None:
    sc = score_cycle(*cross, TS, ModelSet(loaded["entry"]), floor=0.5)
    assert np.isnan(sc.sl_katr).all()
    assert np.isnan(sc.rr_target).all()
    np.testing.assert_array_equal(sc.kept, scores.kept)
    assert sc.versions == {"entry": "1.0.0"}


def test_a_batch_the_models_cannot_read_is_refused(cross: Cross, model_set: ModelSet) -> None:
    matrix, names, symbols = cross
    swapped = list(names)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    with pytest.raises(BatchRefused) as e:
        score_cycle(matrix, swapped, symbols, TS, model_set, floor=0.5)
    assert e.value.code == ReasonCode.FEATURE_SCHEMA_MISMATCH
    assert e.value.values["first_difference"] == 0
    assert e.value.rejection().gate == "feature_schema"
    with pytest.raises(BatchRefused, match="FEATURE_SCHEMA_MISMATCH"):
        score_cycle(matrix, names, symbols, TS, model_set, floor=0.5, schema_version="f9-x")
    with pytest.raises(BatchRefused, match="FEATURE_SCHEMA_MISMATCH"):
        score_cycle(matrix[:-1], names, symbols, TS, model_set, floor=0.5)
    with pytest.raises(BatchRefused, match="FEATURE_SCHEMA_MISMATCH"):
        score_cycle(matrix[:, :-1], names[:-1], symbols, TS, model_set, floor=0.5)
    ok = score_cycle(matrix, names, symbols, TS, model_set, floor=0.5,
                     schema_version=model_set.schema_version)
    assert len(ok) > 0


def test_a_model_set_never_mixes_inputs(loaded: dict[str, LoadedModel]) -> None:
    entry, risk = loaded["entry"], loaded["risk"]
    with pytest.raises(ValueError, match="given as the entry model"):
        ModelSet(risk)
    other_schema = replace(risk, schema_version="f0-old")
    with pytest.raises(ModelRefused) as e:
        ModelSet(entry, risk=other_schema)
    assert e.value.code == ReasonCode.FEATURE_SCHEMA_MISMATCH
    renumbered = replace(risk, strategy_ids=tuple(reversed(risk.strategy_ids)))
    with pytest.raises(ModelRefused) as e:
        ModelSet(entry, risk=renumbered)
    assert e.value.code == ReasonCode.MODEL_INPUT_MISMATCH
    models = ModelSet(entry).with_model(risk)
    assert models.versions() == {"entry": "1.0.0", "risk": "1.0.0"}
    assert models.names == tuple(SCHEMA.names)
    with pytest.raises(ModelRefused):
        models.with_model(other_schema)


def test_selected_proposals_fill_a_candidate_signal(scores: CycleScores) -> None:
    chosen = scores.selected()
    assert len(chosen) == scores.n_kept > 0
    for c in chosen:
        CandidateSignal(
            symbol=c.symbol, tf="5m", bar_time=TS, strategy=c.strategy, side=c.side,
            entry_price=100.0, atr=1.0, p_win=c.p_win, sl_katr=c.sl_katr,
            rr_target=max(c.rr_target, 0.1), offset_katr=c.offset_katr, score=c.score,
            rank=c.rank, cycle_size=c.cycle_size, cycle_threshold=c.cycle_threshold,
            score_floor=c.score_floor, model_versions=scores.versions,
            feature_schema=scores.schema_version,
        )
