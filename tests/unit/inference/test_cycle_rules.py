"""The inference handler's small rules, without servers: which cycles are skipped, how a
kept proposal becomes a CandidateSignal, which floor applies."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, ClassVar

import numpy as np
import pytest

from decile.confirm import HTF_TREND_FEATURE
from decile.events import FeatureBatch
from decile.features import SCHEMA
from decile.reasons import ReasonCode
from decile.serving import Selected
from decile_inference.cycle import LABEL_R, Cycle, _missing, candidate
from decile_inference.settings import InferenceSection

BAR = datetime(2021, 2, 20, 12, 0, tzinfo=UTC)


def batch(symbols: tuple[str, ...], close: float = 100.0, atr_pct: float = 0.5) -> FeatureBatch:
    values = np.full((len(symbols), len(SCHEMA.names) + 1), 0.1)
    values[:, SCHEMA.names.index("atr_14_pct")] = atr_pct
    values[:, -1] = close
    return FeatureBatch(tf="5m", bar_time=BAR, feature_schema=SCHEMA.version,
                        feature_names=SCHEMA.names, context_names=("close",), symbols=symbols,
                        values=values, producer="feature")


def selected(**over: Any) -> Selected:
    fields: dict[str, Any] = dict(symbol="BTC/USDT", row=0, strategy="breakout_adx", side="long",
                                  p_win=0.61, sl_katr=1.2, rr_target=1.8, offset_katr=-0.15,
                                  score=0.61, rank=1, cycle_size=12, cycle_threshold=0.58,
                                  score_floor=0.5)
    return Selected(**(fields | over))


class Scores:
    """The two fields of CycleScores a candidate copies."""

    versions: ClassVar[dict[str, str]] = {"entry": "1.0.0"}
    schema_version = SCHEMA.version


def cycle() -> Cycle:
    return Cycle(bus=None, book=None, cfg=InferenceSection(max_missing_fraction=0.2))  # type: ignore[arg-type]


def test_a_cycle_missing_more_than_the_allowed_share_of_symbols_is_refused() -> None:
    c = cycle()
    names = tuple(f"S{i}/USDT" for i in range(10))
    assert _missing(c, batch(names)) is None  # the first cycle only learns the universe
    assert _missing(c, batch(names[:8])) is None  # 2 of 10 missing: at the limit
    refusal = _missing(c, batch(names[:5]))  # 3 of the previous 8 missing
    assert refusal is not None
    assert refusal.code == ReasonCode.TOO_MANY_MISSING_SYMBOLS
    assert refusal.values["missing"] == 3


def test_a_candidate_is_priced_from_the_same_rows_close_and_atr() -> None:
    signal = candidate(batch(("BTC/USDT",), close=200.0, atr_pct=0.5), selected(), Scores())  # type: ignore[arg-type]
    assert signal is not None
    assert signal.entry_price == 200.0
    assert signal.atr == pytest.approx(1.0)  # 0.5% of 200
    assert signal.model_versions == {"entry": "1.0.0"}


def test_missing_heads_fall_back_to_the_label_r_and_a_missing_close_gives_no_signal() -> None:
    s = selected(sl_katr=math.nan, rr_target=-0.3, offset_katr=math.nan)
    signal = candidate(batch(("BTC/USDT",)), s, Scores())  # type: ignore[arg-type]
    assert signal is not None
    assert (signal.sl_katr, signal.rr_target, signal.offset_katr) == (LABEL_R, LABEL_R, 0.0)
    assert candidate(batch(("BTC/USDT",), close=math.nan), s, Scores()) is None  # type: ignore[arg-type]


def test_the_same_batch_gives_the_same_signal_id() -> None:
    b = batch(("BTC/USDT",))
    first = candidate(b, selected(), Scores())  # type: ignore[arg-type]
    again = candidate(b, selected(), Scores())  # type: ignore[arg-type]
    assert first is not None
    assert again is not None
    assert first.id == again.id


def test_a_candidate_carries_its_bars_higher_timeframe_trend_for_confirm() -> None:
    b = batch(("BTC/USDT", "ETH/USDT"))
    values = np.array(b.values)
    col = SCHEMA.names.index(HTF_TREND_FEATURE)
    values[:, col] = [0.75, math.nan]
    b = b.model_copy(update={"values": values})
    btc = candidate(b, selected(), Scores())  # type: ignore[arg-type]
    eth = candidate(b, selected(symbol="ETH/USDT", row=1), Scores())  # type: ignore[arg-type]
    assert btc is not None
    assert eth is not None
    assert btc.context == {HTF_TREND_FEATURE: pytest.approx(0.75)}
    assert eth.context == {}  # NaN (warm-up) is left out, never sent as a number
