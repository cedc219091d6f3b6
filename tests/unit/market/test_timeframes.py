from datetime import UTC, date, datetime

import numpy as np
import pytest

from decile.market.timeframes import BASE, HIGHER, Timeframe, align, is_aligned, parse, to_ms

HOUR = 3_600_000


@pytest.mark.parametrize(
    ("name", "seconds"),
    [("1m", 60), ("5m", 300), ("15m", 900), ("1h", 3_600), ("4h", 14_400), ("1d", 86_400)],
)
def test_names_parse_to_their_length_in_seconds(name: str, seconds: int) -> None:
    tf = parse(name)
    assert tf.seconds == seconds
    assert tf.ms == seconds * 1_000
    assert str(tf) == name


def test_unknown_timeframe_is_refused_naming_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown timeframe '7m'.*1m, 5m, 15m, 1h, 4h, 1d"):
        parse("7m")


def test_base_is_5m_and_higher_timeframes_are_whole_multiples_of_it() -> None:
    assert BASE is Timeframe.M5
    assert tuple(str(t) for t in HIGHER) == ("15m", "1h", "4h")
    assert all(BASE.divides(t) for t in HIGHER)
    assert not Timeframe.H1.divides(Timeframe.M5)


def test_align_floors_to_the_utc_boundary_for_scalars_and_arrays() -> None:
    t = to_ms("2021-02-01T05:59:59.999Z")
    assert align(t, "4h") == to_ms("2021-02-01T04:00:00Z")
    assert align(t, "1d") == to_ms("2021-02-01")
    arr = np.array([0, HOUR - 1, HOUR, -1], dtype=np.int64)
    assert align(arr, "1h").tolist() == [0, 0, HOUR, -HOUR]


def test_is_aligned_marks_bar_open_times_only() -> None:
    assert is_aligned(to_ms("2021-02-01T04:00:00Z"), "4h")
    assert not is_aligned(to_ms("2021-02-01T03:00:00Z"), "4h")
    assert is_aligned(np.array([0, 300_000, 60_000]), "5m").tolist() == [True, True, False]


def test_to_ms_reads_naive_times_as_utc_never_as_host_time() -> None:
    expected = 1_612_137_600_000
    assert to_ms("2021-02-01T00:00:00") == expected
    assert to_ms("2021-02-01T00:00:00Z") == expected
    assert to_ms("2021-02-01T01:00:00+01:00") == expected
    assert to_ms(datetime(2021, 2, 1)) == expected
    assert to_ms(datetime(2021, 2, 1, tzinfo=UTC)) == expected
    assert to_ms(date(2021, 2, 1)) == expected
    assert to_ms(np.datetime64("2021-02-01T00:00:00")) == expected
    assert to_ms(expected) == expected
