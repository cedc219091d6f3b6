"""The confirm service's window book and verdicts: when a window is decided, at what time,
and that the decisions never depend on how the bars and candidates consumers interleave."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import pytest
from confirm_support import candidate

from decile.confirm import ConfirmConfig, Window
from decile.events import BarBatch, CandidateSignal, ConfirmDecision
from decile.reasons import ReasonCode
from decile_confirm.book import WindowBook
from decile_confirm.verdict import verdict

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
WALL = datetime(2030, 1, 1, tzinfo=UTC)  # far after every bar: event mode must not read it
CONFIG = ConfirmConfig(window_bars=1, window_tf="5m", baseline_bars=4, max_wait_s=60.0)
SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")


def at(k: int) -> datetime:
    """Open time of the ``k``-th 5m bar."""
    return T0 + timedelta(minutes=5 * k)


def section(k: int, symbols: Sequence[str] = SYMBOLS, drift: float = 0.0) -> BarBatch:
    rows = []
    for i, _ in enumerate(symbols):
        c = 100.0 + 0.3 * k + drift + 0.1 * i + 0.2 * ((k * 7 + i) % 3)
        rows.append([c - 0.1, c + 0.2, c - 0.3, c, 10.0 + (k * 5 + i * 3) % 7])
    return BarBatch(tf="5m", bar_time=at(k), symbols=tuple(symbols), values=np.array(rows),
                    producer="test")


def cand(k: int, symbol: str = "BTC/USDT", **over: object) -> CandidateSignal:
    return candidate(symbol=symbol, bar_time=at(k), trace_id=f"{k + 1000:032x}",
                     entry_price=100.0 + 0.3 * k, **over)


class Model:
    """A deterministic stand-in for the ONNX model: features in, a probability out."""

    version = "9.9.9"

    def predict(self, x: npt.ArrayLike) -> npt.NDArray[np.float64]:
        a = np.asarray(x, dtype=np.float64)
        return np.asarray(1.0 / (1.0 + np.exp(-(a @ np.linspace(0.5, -0.4, a.shape[1])))))


def book(mode: str = "event", keep: int = 200, config: ConfirmConfig = CONFIG) -> WindowBook:
    return WindowBook(config, mode, keep)  # type: ignore[arg-type]


def test_a_zero_bar_window_is_decided_on_arrival_at_the_candidates_close() -> None:
    b = book(config=ConfirmConfig(window_bars=0, window_tf="5m"))
    w = b.open(cand(0), WALL)
    assert w is not None
    ready = b.ready(w, WALL)
    assert ready is not None
    assert (ready.stale, ready.decided_at) == (False, at(1))
    d = verdict(ready, b.config, None, "pass")
    assert (d.decision, d.p_confirm, d.model_version, d.decided_at) == ("approve", None, "", at(1))


def test_a_one_bar_window_is_decided_at_its_end_when_its_bar_arrives() -> None:
    b = book()
    for k in range(-4, 0):
        b.on_bars(section(k), WALL)
    w = b.open(cand(0), WALL)  # before the cross-section of its own bar (the race)
    assert w is not None
    assert b.ready(w, WALL) is None
    b.register(w)
    assert b.on_bars(section(0), WALL) == []  # its own bar: baseline, not the window
    [ready] = b.on_bars(section(1), WALL)
    assert (ready.stale, ready.decided_at) == (False, at(2))
    assert [x.ts for x in ready.window.baseline] == [int(at(k).timestamp() * 1000)
                                                    for k in range(-3, 1)]
    d = verdict(ready, b.config, Model(), "pass")
    assert d.model_version == "9.9.9"
    assert d.p_confirm is not None
    assert d.fill_price_hint == pytest.approx(section(1).values[0][3])


def test_a_window_whose_bar_never_comes_is_stale_at_the_first_cross_section_past_its_deadline(
) -> None:
    c = cand(0)
    b = book()
    w = b.open(c, WALL)
    assert w is not None
    b.register(w)
    others = ("ETH/USDT", "SOL/USDT")
    assert b.on_bars(section(1, others), WALL) == []  # closes 12:10, deadline 12:11
    [ready] = b.on_bars(section(2, others), WALL)  # closes 12:15
    assert (ready.stale, ready.decided_at) == (True, at(3))
    d = verdict(ready, b.config, Model(), "pass")
    assert d.decision == "veto"
    assert d.reason is not None
    assert d.reason.code == ReasonCode.CONFIRM_STALE_WINDOW
    assert d.model_version == ""  # no model consulted
    # the same candidate arriving only now is stale at the same time: same decision
    late = book()
    for k in (1, 2, 3):
        late.on_bars(section(k, others), WALL)
    again = late.open(c, WALL)
    assert again is not None
    ready_late = late.ready(again, WALL)
    assert ready_late is not None
    assert verdict(ready_late, late.config, Model(), "pass") == d


def test_a_candidates_own_time_expires_no_window_in_event_mode() -> None:
    b = book()
    w = b.open(cand(0), WALL)
    assert w is not None
    b.register(w)
    later = b.open(cand(20, "ETH/USDT"), WALL)  # its close is long past the first deadline
    assert later is not None
    assert b.due(WALL) == []  # only bar cross-sections move the clock that expires


def test_wall_mode_judges_deadlines_and_decides_on_the_wall_clock() -> None:
    b = book("wall")
    opened = at(1) + timedelta(seconds=3)
    w = b.open(cand(0), opened)
    assert w is not None
    assert w.opened_at == opened
    b.register(w)
    assert b.due(w.deadline - timedelta(seconds=1)) == []
    [ready] = b.due(w.deadline + timedelta(seconds=1))
    assert (ready.stale, ready.decided_at) == (True, w.deadline + timedelta(seconds=1))


# -- the decisions do not depend on the interleaving --------------------------------------


@lru_cache(maxsize=1)
def market() -> tuple[list[CandidateSignal], list[BarBatch]]:
    """Candidates in bar order; cross-sections in bar order, SOL missing from some."""
    sections = [
        section(k, SYMBOLS if k % 4 != 3 else ("BTC/USDT", "ETH/USDT"), drift=0.05 * (k % 5))
        for k in range(-6, 30)
    ]
    cands = [cand(k, SYMBOLS[k % 3], side="long" if k % 4 else "short")
             for k in range(0, 28, 2)]
    cands.append(cand(28, "SOL/USDT", context={"h1_trend_20": 0.4}))
    return cands, sections


def simulate(
    order: Sequence[str], restarts: frozenset[int] = frozenset(), mode: str = "event"
) -> dict[str, ConfirmDecision]:
    """Run the book as the handlers do; ``restarts``: steps before which the process dies
    (open windows survive as JSON, the bar history is replayed)."""
    cands, sections = market()
    out: dict[str, ConfirmDecision] = {}
    state = {"book": book(mode)}
    seen: list[BarBatch] = []

    def decide(readies: list) -> None:  # type: ignore[type-arg]
        for r in readies:
            d = verdict(r, CONFIG, Model(), "pass")
            assert d.id not in out, "decided twice"
            out[d.id] = d
            state["book"].remove(r.window.candidate.id)

    ci = bi = 0
    for step, pick in enumerate(order):
        b = state["book"]
        if step in restarts:
            saved = [json.loads(json.dumps(w.to_dict())) for w in b.windows.values()]
            b = state["book"] = book(mode)
            for s in seen:
                b.history.add(s)
            for doc in saved:
                b.restore(Window.from_dict(doc))
            decide(b.due(WALL))
        if pick == "c":
            w = b.open(cands[ci], WALL)
            ci += 1
            assert w is not None
            ready = b.ready(w, WALL)
            if ready is not None:
                decide([ready])
            else:
                b.register(w)
        else:
            seen.append(sections[bi])
            decide(b.on_bars(sections[bi], WALL))
            bi += 1
    return out


def interleaving(seed: int) -> list[str]:
    cands, sections = market()
    order = ["c"] * len(cands) + ["b"] * len(sections)
    random.Random(seed).shuffle(order)
    return order


def test_every_interleaving_and_restart_gives_the_same_decisions() -> None:
    cands, sections = market()
    reference = simulate(["b"] * len(sections) + ["c"] * len(cands))  # bars far ahead
    assert len(reference) == len(cands)  # every candidate decided exactly once
    outcomes = {(d.decision, d.reason.code if d.reason else None) for d in reference.values()}
    assert ("veto", ReasonCode.CONFIRM_STALE_WINDOW) in outcomes  # SOL's missing bars
    assert any(d.p_confirm is not None for d in reference.values())
    assert {d.decision for d in reference.values()} == {"approve", "veto"}
    assert any(d.flow.get("htf_bias_atr") for d in reference.values())  # from the context
    candidates_first = simulate(["c"] * len(cands) + ["b"] * len(sections))
    assert candidates_first == reference
    for seed in range(40):
        order = interleaving(seed)
        restarts = frozenset(random.Random(seed).sample(range(len(order)), 3))
        assert simulate(order) == reference, f"interleaving {seed}"
        assert simulate(order, restarts) == reference, f"interleaving {seed} with restarts"
