"""Builders for the confirm tests: candidates, hand-made windows, a planted market.

Times: a 5m candidate bar opening at :data:`T0` closes at :data:`CLOSE_MS`,
which is where its 1m window starts; ``minute(k)`` is the open time of the
``k``-th 1m bar from there (negative ``k``: the baseline before it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from decile.confirm import ConfirmConfig, ConfirmDataset, ConfirmModel, FlowBar
from decile.events import CandidateSignal
from decile.market.bars import Bars
from decile.training.split import Split

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
CLOSE = T0 + timedelta(minutes=5)
CLOSE_MS = int(CLOSE.timestamp()) * 1000
MINUTE_MS = 60_000
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SYMBOLS = ("ADA/USDT", "BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT")


def minute(k: int) -> int:
    """Open time (ms) of the ``k``-th 1m bar after the candidate's close."""
    return CLOSE_MS + k * MINUTE_MS


def candidate(**overrides: Any) -> CandidateSignal:
    """A long BTC candidate at 100.0 with ATR 1.0 (1% of price: the middle bucket)."""
    fields: dict[str, Any] = {
        "trace_id": TRACE_ID,
        "symbol": "BTC/USDT",
        "tf": "5m",
        "bar_time": T0,
        "strategy": "breakout",
        "side": "long",
        "entry_price": 100.0,
        "atr": 1.0,
        "p_win": 0.57,
        "sl_katr": 1.5,
        "rr_target": 2.0,
        "offset_katr": 0.1,
        "score": 0.83,
        "rank": 1,
        "cycle_size": 120,
        "cycle_threshold": 0.74,
        "score_floor": 0.6,
        "model_versions": {"entry": "1.0.0"},
        "feature_schema": "f1-test",
        "producer": "inference",
    }
    return CandidateSignal(**(fields | overrides))


def bar(ts: int, close: float, volume: float = 10.0) -> FlowBar:
    """A 1m bar closing at ``close``; the range brackets it by 0.1."""
    return FlowBar(ts, close, close + 0.1, close - 0.1, close, volume)


def bars_of(symbol: str, rows: Sequence[FlowBar]) -> Bars:
    a = np.asarray([r[1:] for r in rows], dtype=np.float64)
    return Bars.from_arrays(symbol, [r.ts for r in rows], *a.T)


def planted_market(
    n: int = 1500, seed: int = 7, config: ConfirmConfig | None = None, noise: float = 0.5
) -> tuple[list[CandidateSignal], dict[str, float], Bars, np.ndarray]:
    """Candidates whose outcome depends on where price stands against entry after the window.

    Candidate ``i`` is on ``SYMBOLS[i % 5]`` at hour ``i // 5`` (windows never
    overlap). Its window ends ``u ~ N(0, 1)`` ATR in its favour; the trade wins
    (R = +1, else -1) when ``u + N(0, noise) > 0``. Everything else (side,
    ATR, volume, the baseline walk) is noise. Returns the candidates, the
    outcomes by id, the 1m bars, and ``u``.
    """
    cfg = config or ConfirmConfig()
    rng = np.random.default_rng(seed)
    cands: list[CandidateSignal] = []
    outcomes: dict[str, float] = {}
    rows: dict[str, list[FlowBar]] = {s: [] for s in SYMBOLS}
    u = rng.normal(0.0, 1.0, n)
    for i in range(n):
        sym = SYMBOLS[i % len(SYMBOLS)]
        bar_time = T0 + timedelta(hours=i // len(SYMBOLS))
        entry = float(100.0 * np.exp(rng.normal(0, 0.3)))
        atr = entry * float(rng.uniform(0.15, 1.0)) / 100.0
        side = "long" if rng.random() < 0.5 else "short"
        sign = 1.0 if side == "long" else -1.0
        c = candidate(
            symbol=sym, bar_time=bar_time, side=side, entry_price=entry, atr=atr,
            trace_id=f"{i:032x}",
        )
        cands.append(c)
        outcomes[c.id] = 1.0 if u[i] + rng.normal(0.0, noise) > 0 else -1.0
        close_ms = int(bar_time.timestamp()) * 1000 + 300_000
        # baseline: a random walk that ends at the entry price
        walk = np.cumsum(rng.normal(0.0, atr / 4, cfg.baseline_bars))
        path = entry + walk - walk[-1]
        for k in range(cfg.baseline_bars):
            ts = close_ms - (cfg.baseline_bars - k) * MINUTE_MS
            rows[sym].append(bar(ts, float(path[k]), float(rng.lognormal(2.0, 0.3))))
        # window: from entry towards entry + sign * u * atr, with a little noise
        target = entry + sign * u[i] * atr
        for k in range(cfg.window_bars):
            frac = (k + 1) / cfg.window_bars
            px = entry + frac * (target - entry) + float(rng.normal(0.0, atr / 20))
            if k == cfg.window_bars - 1:
                px = target
            rows[sym].append(bar(close_ms + k * MINUTE_MS, px, float(rng.lognormal(2.0, 0.3))))
    parts = [bars_of(s, r) for s, r in rows.items() if r]
    return cands, outcomes, Bars.concat(parts), u


@dataclass(frozen=True)
class Planted:
    """The planted market with its dataset, split and fitted model (a session fixture)."""

    config: ConfirmConfig
    candidates: list[CandidateSignal]
    outcomes: dict[str, float]
    bars: Bars
    u: np.ndarray
    ds: ConfirmDataset
    split: Split
    model: ConfirmModel


