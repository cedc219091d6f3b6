import csv
import math

import numpy as np
import pytest

from decile.market.bars import Bars
from decile.market.loaders import iter_cycles, load_demo, read_bars
from decile.market.quality import NO_TS, QualityReason, QualityState, check
from decile.market.timeframes import to_ms
from decile.testing.probes import SHARED_DATA

R = QualityReason
T0 = to_ms("2021-02-01")
M5 = 300_000
NOW = T0 + 100 * M5  # far enough that the test bars are closed
NAN, INF = float("nan"), float("inf")
BINANCE = SHARED_DATA / "binance-spot-5m-nfi"

Row = tuple[str, int, float, float, float, float, float]
GOOD: Row = ("BTC/USDT", T0 + 10 * M5, 10.0, 11.0, 9.0, 10.5, 5.0)


def make(rows: list[Row]) -> Bars:
    sym, ts, o, h, lo, c, v = zip(*rows, strict=True)
    return Bars.from_arrays(list(sym), ts, o, h, lo, c, v)


def with_(row: Row = GOOD, **changes: float | str) -> Row:
    fields = ["symbol", "ts", "open", "high", "low", "close", "volume"]
    values = dict(zip(fields, row, strict=True)) | changes
    return tuple(values[f] for f in fields)  # type: ignore[return-value]


def state_with(last: dict[str, int]) -> QualityState:
    return QualityState.from_dict("5m", last)


# One bad bar per rule, with the state it meets.
CORPUS: list[tuple[str, Row, dict[str, int], QualityReason]] = [
    ("nan close", with_(close=NAN), {}, R.NON_FINITE),
    ("infinite volume", with_(volume=INF), {}, R.NON_FINITE),
    ("nan high", with_(high=NAN), {}, R.NON_FINITE),
    ("zero low", with_(low=0.0), {}, R.NON_POSITIVE_PRICE),
    (
        "negative prices",
        with_(open=-1.0, low=-2.0, close=-1.5, high=-0.5),
        {},
        R.NON_POSITIVE_PRICE,
    ),
    ("negative volume", with_(volume=-0.1), {}, R.NEGATIVE_VOLUME),
    ("high below low", with_(high=8.0), {}, R.HIGH_LOW_INCONSISTENT),
    ("close above high", with_(close=11.5), {}, R.HIGH_LOW_INCONSISTENT),
    ("open below low", with_(open=8.5), {}, R.HIGH_LOW_INCONSISTENT),
    ("one minute off the grid", with_(ts=GOOD[1] + 60_000), {}, R.MISALIGNED),
    ("closes after now", with_(ts=NOW), {}, R.UNFINISHED),
    ("already accepted", GOOD, {"BTC/USDT": GOOD[1]}, R.DUPLICATE),
    ("older than last", GOOD, {"BTC/USDT": GOOD[1] + M5}, R.OUT_OF_ORDER),
]


@pytest.mark.parametrize(
    ("row", "last", "reason"), [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS]
)
def test_each_bad_bar_is_rejected_with_its_reason(
    row: Row, last: dict[str, int], reason: QualityReason
) -> None:
    ok = ("ETH/USDT", GOOD[1], 2.0, 2.0, 2.0, 2.0, 0.0)
    result = check(make([row, ok]), state_with(last), now_ms=NOW)
    assert result.rejected.reasons == [reason]
    assert result.rejected.index.tolist() == [0]
    assert result.accepted.symbol.tolist() == ["ETH/USDT"]
    assert result.rejected.counts() == {reason: 1}


def test_every_reason_is_covered_by_the_corpus() -> None:
    assert {c[3] for c in CORPUS} == set(QualityReason)


def test_the_first_failing_reason_in_priority_order_wins() -> None:
    row = with_(close=NAN, ts=GOOD[1] + 1, volume=-1.0)
    assert check(make([row]), QualityState.initial("5m"), NOW).rejected.reasons == [R.NON_FINITE]


def test_zero_volume_and_flat_bars_are_real_and_accepted() -> None:
    row = with_(open=1.0, high=1.0, low=1.0, close=1.0, volume=0.0)
    assert len(check(make([row]), QualityState.initial("5m"), NOW).accepted) == 1


def test_a_bar_closing_exactly_at_now_is_final() -> None:
    row = with_(ts=NOW - M5)
    assert len(check(make([row]), QualityState.initial("5m"), NOW).accepted) == 1
    assert check(make([row]), QualityState.initial("5m"), NOW - 1).rejected.reasons == [
        R.UNFINISHED
    ]


def test_a_repeat_within_the_batch_keeps_the_first_and_rejects_the_rest() -> None:
    first = GOOD
    again = with_(close=10.9)
    result = check(make([first, again, again]), QualityState.initial("5m"), NOW)
    assert result.accepted.close.tolist() == [10.5]
    assert result.rejected.reasons == [R.DUPLICATE, R.DUPLICATE]
    assert result.rejected.index.tolist() == [1, 2]


def test_passing_the_same_batch_twice_rejects_it_all_as_duplicate() -> None:
    bars = make([GOOD, with_(ts=GOOD[1] + M5)])
    first = check(bars, QualityState.initial("5m"), NOW)
    second = check(bars, first.state, NOW)
    assert len(second.accepted) == 0
    assert second.rejected.reasons == [R.OUT_OF_ORDER, R.DUPLICATE]


def test_out_of_order_within_a_batch_is_judged_in_arrival_order() -> None:
    rows = [with_(ts=GOOD[1] + 2 * M5), GOOD, with_(ts=GOOD[1] + 3 * M5)]
    result = check(make(rows), QualityState.initial("5m"), NOW)
    assert result.accepted.ts.tolist() == [GOOD[1] + 2 * M5, GOOD[1] + 3 * M5]
    assert result.rejected.reasons == [R.OUT_OF_ORDER]


def test_a_rejected_row_does_not_advance_its_symbols_clock() -> None:
    corrupt_future = with_(ts=GOOD[1] + 5 * M5, close=NAN)
    result = check(make([corrupt_future, GOOD]), QualityState.initial("5m"), NOW)
    assert result.accepted.ts.tolist() == [GOOD[1]]
    assert result.state.last("BTC/USDT") == GOOD[1]


def test_gaps_count_missing_bars_between_last_accepted_and_new_bar() -> None:
    state = state_with({"BTC/USDT": GOOD[1] - 4 * M5, "ETH/USDT": GOOD[1] - M5})
    rows = [
        GOOD,
        ("ETH/USDT", GOOD[1], 2.0, 2.0, 2.0, 2.0, 1.0),
        ("ADA/USDT", GOOD[1], 1, 1, 1, 1, 1),
    ]
    result = check(make(rows), state, NOW)
    assert len(result.accepted) == 3
    assert result.gaps.by_symbol() == {"BTC/USDT": 3}  # a first bar (ADA) has no gap
    assert result.gaps.records() == [
        {"symbol": "BTC/USDT", "prev_ts": GOOD[1] - 4 * M5, "ts": GOOD[1], "missing": 3}
    ]
    assert result.gaps.total == 3


def test_gaps_inside_one_batch_are_reported_per_hole() -> None:
    rows = [with_(ts=GOOD[1] + k * M5) for k in (0, 1, 4, 5, 9)]
    result = check(make(rows), QualityState.initial("5m"), NOW)
    assert result.gaps.missing.tolist() == [2, 3]
    assert result.gaps.total == 5


def test_the_check_returns_a_new_state_and_leaves_the_old_one_untouched() -> None:
    state = state_with({"BTC/USDT": GOOD[1] - M5})
    result = check(make([GOOD, ("XRP/USDT", GOOD[1], 1, 1, 1, 1, 1)]), state, NOW)
    assert state.to_dict() == {"BTC/USDT": GOOD[1] - M5}
    assert result.state.to_dict() == {"BTC/USDT": GOOD[1], "XRP/USDT": GOOD[1]}
    assert result.state.last("NOPE/USDT") is None
    assert QualityState.from_dict("5m", result.state.to_dict()).to_dict() == result.state.to_dict()


def test_records_carry_the_offending_values_and_the_limit_they_broke() -> None:
    rows = [with_(ts=NOW), with_(ts=GOOD[1] - M5), with_(symbol="ETH/USDT", ts=GOOD[1] + 1)]
    result = check(make(rows), state_with({"BTC/USDT": GOOD[1]}), NOW)
    unfinished, old, misaligned = result.rejected.records()
    assert unfinished["reason"] is R.UNFINISHED
    assert unfinished["values"]["close_ts"] == NOW + M5
    assert unfinished["values"]["now_ms"] == NOW
    assert old["reason"] is R.OUT_OF_ORDER
    assert old["values"]["last_ts"] == GOOD[1]
    assert old["values"]["close"] == 10.5
    assert misaligned["values"]["tf_ms"] == M5
    assert misaligned["symbol"] == "ETH/USDT"


def test_an_empty_batch_changes_nothing() -> None:
    state = state_with({"BTC/USDT": GOOD[1]})
    result = check(Bars.empty(), state, NOW)
    assert len(result.accepted) == len(result.rejected) == len(result.gaps) == 0
    assert result.state.to_dict() == state.to_dict()


def reference(rows: list[Row], last: dict[str, int], now: int) -> list[QualityReason | None]:
    """The rules written the slow, obvious way, row by row."""
    before = dict(last)
    last = dict(last)
    seen: set[tuple[str, int]] = set()
    out: list[QualityReason | None] = []
    for sym, ts, o, h, lo, c, v in rows:
        if not all(math.isfinite(x) for x in (o, h, lo, c, v)):
            out.append(R.NON_FINITE)
        elif min(o, h, lo, c) <= 0:
            out.append(R.NON_POSITIVE_PRICE)
        elif v < 0:
            out.append(R.NEGATIVE_VOLUME)
        elif not (lo <= o <= h and lo <= c <= h):
            out.append(R.HIGH_LOW_INCONSISTENT)
        elif ts % M5:
            out.append(R.MISALIGNED)
        elif ts + M5 > now:
            out.append(R.UNFINISHED)
        elif (sym, ts) in seen or before.get(sym) == ts:
            out.append(R.DUPLICATE)
        elif ts < last.get(sym, NO_TS):
            out.append(R.OUT_OF_ORDER)
        else:
            out.append(None)
            last[sym] = ts
        if out[-1] in (None, R.DUPLICATE, R.OUT_OF_ORDER):
            seen.add((sym, ts))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_vectorised_check_matches_a_row_by_row_reference_on_random_batches(seed: int) -> None:
    rng = np.random.default_rng(seed)
    syms = ["A/USDT", "B/USDT", "C/USDT", "D/USDT"]
    rows: list[Row] = []
    for _ in range(400):
        sym = syms[rng.integers(len(syms))]
        ts = T0 + int(rng.integers(0, 40)) * M5 + (60_000 if rng.random() < 0.05 else 0)
        o, c = rng.uniform(1, 2, 2)
        h, lo = max(o, c) + rng.uniform(0, 0.2), min(o, c) - rng.uniform(0, 0.2)
        v = rng.uniform(0, 10)
        roll = rng.random()
        if roll < 0.03:
            c = NAN
        elif roll < 0.06:
            h = lo - 0.1
        elif roll < 0.08:
            v = -1.0
        elif roll < 0.10:
            lo = 0.0
        rows.append((sym, ts, o, h, lo, c, v))
    last = {"A/USDT": T0 + 5 * M5, "C/USDT": T0 + 20 * M5}
    now = T0 + 35 * M5
    result = check(make(rows), state_with(last), now)
    expected = reference(rows, last, now)
    got: list[QualityReason | None] = [None] * len(rows)
    for i, r in zip(result.rejected.index.tolist(), result.rejected.reasons, strict=True):
        got[i] = r
    assert got == expected
    accepted_last = dict(last)
    for (sym, ts, *_), verdict in zip(rows, expected, strict=True):
        if verdict is None:
            accepted_last[sym] = ts
    assert result.state.to_dict() == accepted_last


def test_demo_data_passes_every_check_and_reports_the_outage_as_gaps() -> None:
    bars = load_demo()
    result = check(bars, QualityState.initial("5m"), now_ms=int(bars.ts.max()) + M5)
    assert len(result.rejected) == 0
    assert len(result.accepted) == len(bars)
    assert set(result.gaps.by_symbol().values()) == {15}  # 2021-02-11 03:45..04:55 UTC
    assert set(result.gaps.prev_ts.tolist()) == {to_ms("2021-02-11T03:40:00Z")}


def test_checking_cycle_by_cycle_gives_the_same_result_as_one_batch() -> None:
    bars = load_demo(start="2021-02-10", end="2021-02-12")
    bars = bars.take(np.random.default_rng(0).random(len(bars)) > 0.05)  # more holes
    whole = check(bars, QualityState.initial("5m"), now_ms=int(bars.ts.max()) + M5)
    state, accepted = QualityState.initial("5m"), 0
    gaps: dict[str, int] = {}
    for ts, cycle in iter_cycles(bars):
        step = check(cycle, state, now_ms=ts + M5)
        state, accepted = step.state, accepted + len(step.accepted)
        for sym, n in step.gaps.by_symbol().items():
            gaps[sym] = gaps.get(sym, 0) + n
    assert accepted == len(whole.accepted)
    assert gaps == whole.gaps.by_symbol()
    assert state.to_dict() == whole.state.to_dict()


@pytest.mark.skipif(not BINANCE.is_dir(), reason="Binance copy under ../shared/data is absent")
def test_gaps_on_the_full_binance_copy_match_its_published_missing_bar_counts() -> None:
    bars = read_bars(BINANCE)
    result = check(bars, QualityState.initial("5m"), now_ms=int(bars.ts.max()) + M5)
    assert len(result.rejected) == 0
    with (BINANCE / "_pairs_summary.csv").open() as fh:
        published = {row["pair"]: int(row["missing_bars"]) for row in csv.DictReader(fh)}
    gaps = result.gaps.by_symbol()
    assert {p: gaps.get(p, 0) for p in published} == published
