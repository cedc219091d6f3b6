"""Pure parts of the Binance adapter: kline frames, REST rows, the yield cursor, backoff."""

from __future__ import annotations

import json
import math

import pytest

from decile.market.timeframes import Timeframe
from decile_ingest.live import (
    BadFrame,
    BinanceSource,
    Cursor,
    Kline,
    backoff_delay,
    exchange_symbol,
    parse_frame,
    parse_row,
    to_bars,
)

TF = Timeframe.M5
M5 = TF.ms
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
NAMES = {"BTCUSDT": "BTC/USDT", "ETHUSDT": "ETH/USDT"}


def kline(**changes: object) -> dict[str, object]:
    k: dict[str, object] = {"t": T0, "T": T0 + M5 - 1, "s": "BTCUSDT", "i": "5m", "f": 100,
                            "L": 200, "o": "42000.10", "c": "42010.50", "h": "42050.00",
                            "l": "41990.00", "v": "12.5", "n": 100, "x": True, "q": "1",
                            "V": "1", "Q": "1", "B": "0"}
    k |= changes
    return {key: v for key, v in k.items() if v is not None}  # None removes a field


def frame(**changes: object) -> str:
    data = {"e": "kline", "E": T0 + M5, "s": "BTCUSDT", "k": kline(**changes)}
    return json.dumps({"stream": "btcusdt@kline_5m", "data": data})


def row(ts: int = T0) -> list[object]:
    return [ts, "42000.10", "42050.00", "41990.00", "42010.50", "12.5", ts + M5 - 1, "525000.0",
            100, "6.0", "252000.0", "0"]


def k_(symbol: str, i: int, closed: bool = True, close: float = 1.0) -> Kline:
    ts = T0 + i * M5
    return Kline(symbol, ts, ts + M5 - 1, 1.0, 2.0, 0.5, close, 10.0, closed)


def test_pairs_are_spelled_the_binance_way() -> None:
    assert exchange_symbol("BTC/USDT") == "BTCUSDT"
    assert exchange_symbol("ethusdt") == "ETHUSDT"


def test_a_closed_candle_frame_becomes_a_kline_under_our_symbol_name() -> None:
    k = parse_frame(frame(), NAMES, TF)
    assert k == Kline("BTC/USDT", T0, T0 + M5 - 1, 42000.10, 42050.0, 41990.0, 42010.50, 12.5,
                      closed=True)


def test_an_open_candle_frame_is_marked_open() -> None:
    assert not parse_frame(frame(x=False), NAMES, TF).closed


def test_a_bare_stream_payload_and_bytes_parse_like_the_combined_envelope() -> None:
    bare = json.dumps({"e": "kline", "E": 1, "s": "BTCUSDT", "k": kline()})
    assert parse_frame(bare.encode(), NAMES, TF) == parse_frame(frame(), NAMES, TF)


def test_a_nan_price_passes_through_for_the_quality_check_to_quarantine() -> None:
    assert math.isnan(parse_frame(frame(c="NaN"), NAMES, TF).close)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("{not json", id="bad-json"),
        pytest.param(b"\xff\xfe", id="bad-utf8"),
        pytest.param("[]", id="not-an-object"),
        pytest.param('{"result": null, "id": 1}', id="subscription-reply"),
        pytest.param('{"data": {"e": "trade", "s": "BTCUSDT"}}', id="other-event"),
        pytest.param('{"data": {"e": "kline", "k": []}}', id="kline-not-object"),
        pytest.param(frame(s="DOGEUSDT"), id="unsubscribed-symbol"),
        pytest.param(frame(s=["BTCUSDT"]), id="unhashable-symbol"),
        pytest.param(frame(i="1m"), id="other-interval"),
        pytest.param(frame(x="true"), id="closed-flag-string"),
        pytest.param(frame(x=None), id="missing-closed-flag"),
        pytest.param(frame(c=None), id="missing-close"),
        pytest.param(frame(T=None), id="missing-close-time"),
        pytest.param(frame(o="abc"), id="price-not-a-number"),
        pytest.param(frame(v=None), id="missing-volume"),
        pytest.param(frame(h=True), id="price-is-a-bool"),
        pytest.param(frame(t="1704067200000"), id="open-time-a-string"),
        pytest.param(frame(t=1.5), id="open-time-a-float"),
    ],
)
def test_a_malformed_frame_is_refused_with_bad_frame(raw: str | bytes) -> None:
    with pytest.raises(BadFrame):
        parse_frame(raw, NAMES, TF)


def test_a_rest_row_is_closed_exactly_when_the_clock_reaches_its_close() -> None:
    assert parse_row(row(), "BTC/USDT", TF, now_ms=T0 + M5).closed
    assert not parse_row(row(), "BTC/USDT", TF, now_ms=T0 + M5 - 1).closed


def test_a_rest_row_carries_the_same_values_as_the_frame() -> None:
    k = parse_row(row(), "BTC/USDT", TF, now_ms=T0 + M5)
    assert k == parse_frame(frame(), NAMES, TF)


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"t": T0}, id="object"),
        pytest.param([T0, "1", "2", "0.5", "1"], id="too-short"),
        pytest.param([str(T0), "1", "2", "0.5", "1", "3", T0 + M5 - 1], id="open-time-a-string"),
        pytest.param([T0, "1", "2", None, "1", "3", T0 + M5 - 1], id="null-low"),
        pytest.param([T0, "1", "2", "0.5", "x", "3", T0 + M5 - 1], id="close-not-a-number"),
    ],
)
def test_a_malformed_rest_row_is_refused_with_bad_frame(bad: object) -> None:
    with pytest.raises(BadFrame):
        parse_row(bad, "BTC/USDT", TF, now_ms=T0 + M5)


def test_klines_become_bars_row_for_row() -> None:
    bars = to_bars([k_("ETH/USDT", 0, close=1.5), k_("BTC/USDT", 0, close=1.25)])
    assert bars.row_names() == ("ETH/USDT", "BTC/USDT")
    assert bars.close.tolist() == [1.5, 1.25]
    assert bars.ts.tolist() == [T0, T0]


def test_the_cursor_yields_one_cross_section_per_open_time_oldest_first() -> None:
    cur = Cursor(M5, floor=T0)
    out = cur.take([k_("ETH/USDT", 1), k_("BTC/USDT", 0), k_("BTC/USDT", 1), k_("ETH/USDT", 0)])
    assert [b.ts.tolist() for b in out] == [[T0, T0], [T0 + M5, T0 + M5]]
    assert [b.row_names() for b in out] == [("BTC/USDT", "ETH/USDT")] * 2
    assert cur.next_ts("BTC/USDT") == T0 + 2 * M5


def test_the_cursor_never_yields_a_bar_twice_nor_one_older_than_the_last() -> None:
    cur = Cursor(M5, floor=T0)
    assert len(cur.take([k_("BTC/USDT", 2)])) == 1
    assert cur.take([k_("BTC/USDT", 2), k_("BTC/USDT", 1), k_("BTC/USDT", 2, close=9.0)]) == []


def test_the_cursor_drops_open_candles() -> None:
    cur = Cursor(M5, floor=T0)
    assert cur.take([k_("BTC/USDT", 0, closed=False)]) == []
    assert cur.next_ts("BTC/USDT") == T0, "an open candle does not move the resume point"


def test_a_symbol_never_yielded_resumes_at_the_floor() -> None:
    assert Cursor(M5, floor=T0 + 7).next_ts("ETH/USDT") == T0 + 7


def test_backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() -> None:
    assert [backoff_delay(a, 0.5, 30.0, rand=0.999999) for a in (1, 2, 3)] == pytest.approx(
        [0.5, 1.0, 2.0]
    )
    assert backoff_delay(1, 0.5, 30.0, rand=0.0) == 0.25
    assert backoff_delay(60, 0.5, 30.0, rand=0.0) == 15.0
    assert backoff_delay(10_000, 0.5, 30.0, rand=0.5) == 22.5


def test_the_source_subscribes_one_combined_stream_and_maps_symbols_back() -> None:
    src = BinanceSource(("BTC/USDT", "ETH/USDT"), "5m", "wss://x:9443/", "https://y/")
    assert src.stream_url == "wss://x:9443/stream?streams=btcusdt@kline_5m/ethusdt@kline_5m"
    assert src.names == NAMES
    assert src.name == "binance:5m"


@pytest.mark.parametrize(
    ("symbols", "kw"),
    [
        pytest.param((), {}, id="no-symbols"),
        pytest.param(("BTC/USDT", "BTCUSDT"), {}, id="colliding-symbols"),
        pytest.param(("BTC/USDT",), {"backoff_initial": 0.0}, id="zero-backoff"),
        pytest.param(("BTC/USDT",), {"backoff_initial": 5.0, "backoff_max": 1.0}, id="cap-below"),
        pytest.param(("BTC/USDT",), {"page_limit": 1001}, id="page-too-big"),
    ],
)
def test_a_bad_configuration_stops_the_source_at_construction(
    symbols: tuple[str, ...], kw: dict[str, float]
) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        BinanceSource(symbols, "5m", "wss://x", "https://y", **kw)  # type: ignore[arg-type]
