"""Reading the confirm model's inputs from recorded events: pure parts (bodies, links, spans)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from decile import codec
from decile.confirm import ConfirmConfig, build_confirm_dataset
from decile.events import CandidateSignal
from decile.market.bars import Bars
from decile.training.outcomes import TradeRow, link_outcomes, parse_candidate, window_spans

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def candidate(k: int = 0, symbol: str = "BTC/USDT", **extra: Any) -> CandidateSignal:
    return CandidateSignal(
        symbol=symbol, tf="5m", bar_time=T0 + timedelta(minutes=5 * k), strategy="breakout",
        side="long" if k % 2 == 0 else "short", entry_price=100.0, atr=0.5, p_win=0.6,
        sl_katr=1.5, rr_target=1.5, offset_katr=0.0, score=0.8, rank=1, cycle_size=4,
        cycle_threshold=0.7, score_floor=0.6, model_versions={"entry": "1.0.0"},
        feature_schema="f1-test", **extra,
    )


def stored(c: CandidateSignal) -> dict[str, Any]:
    """The body the recorder keeps (codec JSON, as in ``events.body``)."""
    body: dict[str, Any] = json.loads(codec.encode(c)[0])
    return body


def test_a_stored_candidate_gives_back_the_event_and_its_1h_trend() -> None:
    c = candidate(context={"h1_trend_20": 0.42})
    got, trend = parse_candidate(stored(c))
    assert got == c
    assert trend == 0.42


@pytest.mark.parametrize("context", [None, {}, {"other": 1.0}], ids=["absent", "empty", "other"])
def test_a_candidate_without_the_trend_gives_none_so_the_feature_stays_neutral(
    context: dict[str, Any] | None,
) -> None:
    body = stored(candidate())
    if context is None:
        body.pop("context", None)
    else:
        body["context"] = context
    assert parse_candidate(body)[1] is None


def test_a_field_this_code_does_not_know_is_dropped_not_a_refusal() -> None:
    body = {**stored(candidate()), "added_later": {"x": 1}}
    assert parse_candidate(body)[0].id == body["id"]


def test_a_body_that_does_not_validate_raises() -> None:
    body = {**stored(candidate()), "entry_price": -1.0}
    with pytest.raises(ValidationError):
        parse_candidate(body)


def test_outcomes_keep_the_first_same_side_trade_of_each_candidate() -> None:
    rows = [
        TradeRow("a", "long", "long", "1.4"),
        TradeRow("a", "long", "long", "-1.0"),  # a second trade of "a": not its outcome
        TradeRow("b", "long", "short", "2.0"),  # inverted: the other side's R
        TradeRow(None, None, "long", "1.0"),  # its decision was never recorded
        TradeRow("c", "short", "short", None),
        TradeRow("d", "short", "short", "nan"),
        TradeRow("e", "short", "short", "-0.3"),
    ]
    outcomes, counts = link_outcomes(rows)
    assert outcomes == {"a": 1.4, "e": -0.3}
    assert counts == {"trades": 7, "unlinked": 1, "other_side": 1, "unreadable_r": 2,
                      "duplicates": 1, "outcomes": 2}


@pytest.mark.parametrize(
    "config",
    [ConfirmConfig.fleet(), ConfirmConfig(window_tf="1m", window_bars=3, baseline_bars=10)],
    ids=["fleet", "1m-window"],
)
def test_the_spans_hold_every_bar_the_dataset_reads(config: ConfirmConfig) -> None:
    rng = np.random.default_rng(3)
    tf_ms = config.window_tf.ms
    start = int(T0.timestamp() * 1000) - 200 * tf_ms
    n = 1000
    ts = start + tf_ms * np.arange(n, dtype=np.int64)
    parts = []
    for sym in ("BTC/USDT", "ETH/USDT"):
        close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
        parts.append(Bars.from_arrays(sym, ts, close, close * 1.001, close * 0.999, close,
                                      rng.lognormal(2, 0.3, n)))
    bars = Bars.concat(parts)
    cands = [candidate(k, sym) for k in range(0, 60, 3) for sym in ("BTC/USDT", "ETH/USDT")]
    outcomes = {c.id: float(rng.normal()) for c in cands}
    keep = np.zeros(len(bars), dtype=bool)
    for sym, lo, hi in window_spans(cands, config):
        keep |= (np.asarray(bars.symbols)[bars.code] == sym) & (bars.ts >= lo) & (bars.ts < hi)
    full = build_confirm_dataset(cands, outcomes, bars, config)
    spanned = build_confirm_dataset(cands, outcomes, bars.take(np.flatnonzero(keep)), config)
    assert len(full) == len(cands)
    assert keep.sum() < len(bars) / 2
    assert np.array_equal(full.x, spanned.x)
    assert full.candidate_ids == spanned.candidate_ids
