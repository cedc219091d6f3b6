"""Bar timeframes: validated names, their length, and UTC-aligned bar times.

Every bar time in Decile is an int64 count of milliseconds since the Unix
epoch (UTC) and marks the bar's OPEN. A bar of timeframe ``tf`` opened at
``ts`` covers ``[ts, ts + tf.ms)`` and is closed once a clock reads
``ts + tf.ms``. Bars are aligned to multiples of their length counted from the
epoch, which is midnight UTC, so 1h, 4h and 1d bars sit on UTC hour, 4-hour
and day boundaries whatever the exchange's time zone.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Final, TypeVar, overload

import numpy as np
import numpy.typing as npt

__all__ = [
    "BASE",
    "HIGHER",
    "Timeframe",
    "align",
    "is_aligned",
    "parse",
    "to_ms",
]

_UNIT_S: Final = {"m": 60, "h": 3_600, "d": 86_400}
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class Timeframe(StrEnum):
    """The timeframes Decile knows; the value is the name used in subjects (``md.bars.5m``).

    A closed set rather than any ``<n><unit>`` string: every service must
    agree on the subject names, and an unknown name is a configuration error
    best caught at start.
    """

    M1 = "1m"
    M5 = "5m"
    M15 = "15m"
    H1 = "1h"
    H4 = "4h"
    D1 = "1d"

    @property
    def seconds(self) -> int:
        """Length of one bar in seconds."""
        return _SECONDS[self]

    @property
    def ms(self) -> int:
        """Length of one bar in milliseconds, the unit of every ``ts``."""
        return self.seconds * 1_000

    def divides(self, other: Timeframe) -> bool:
        """True when ``other`` is a strictly longer whole multiple of this timeframe.

        Only then can ``other`` bars be built from this one's without splitting a bar.
        """
        return other.ms > self.ms and other.ms % self.ms == 0


_SECONDS: Final = {tf: int(tf.value[:-1]) * _UNIT_S[tf.value[-1]] for tf in Timeframe}

BASE: Final = Timeframe.M5
"""The timeframe the ingest service receives and checks; others are resampled from it."""

HIGHER: Final = (Timeframe.M15, Timeframe.H1, Timeframe.H4)
"""Timeframes resampled from :data:`BASE`, shortest first."""


def parse(name: str | Timeframe) -> Timeframe:
    """The :class:`Timeframe` for ``name`` ("5m", "1h"...); ``ValueError`` names the valid ones."""
    if isinstance(name, Timeframe):
        return name
    try:
        return Timeframe(str(name).strip().lower())
    except ValueError:
        valid = ", ".join(tf.value for tf in Timeframe)
        raise ValueError(f"unknown timeframe {name!r}; expected one of {valid}") from None


_T = TypeVar("_T", bound=np.generic)


@overload
def align(ts_ms: int, tf: str | Timeframe) -> int: ...
@overload
def align(ts_ms: npt.NDArray[_T], tf: str | Timeframe) -> npt.NDArray[np.int64]: ...
def align(ts_ms: int | npt.NDArray[_T], tf: str | Timeframe) -> int | npt.NDArray[np.int64]:
    """Open time of the ``tf`` bar containing ``ts_ms`` (floor to the UTC boundary).

    Works on a scalar or an int64 array; floor division keeps pre-1970 times correct.
    """
    step = parse(tf).ms
    if isinstance(ts_ms, np.ndarray):
        arr = ts_ms.astype(np.int64, copy=False)
        return arr - arr % step
    return int(ts_ms) - int(ts_ms) % step


@overload
def is_aligned(ts_ms: int, tf: str | Timeframe) -> bool: ...
@overload
def is_aligned(ts_ms: npt.NDArray[_T], tf: str | Timeframe) -> npt.NDArray[np.bool_]: ...
def is_aligned(ts_ms: int | npt.NDArray[_T], tf: str | Timeframe) -> bool | npt.NDArray[np.bool_]:
    """True where ``ts_ms`` is the open time of a ``tf`` bar."""
    step = parse(tf).ms
    if isinstance(ts_ms, np.ndarray):
        return np.asarray(ts_ms.astype(np.int64, copy=False) % step == 0)
    return int(ts_ms) % step == 0


def to_ms(when: int | float | str | datetime | date | np.datetime64) -> int:
    """Milliseconds since the epoch (UTC) for a time given loosely.

    ints are taken as milliseconds already; naive datetimes and ISO strings
    without an offset are UTC (never the host's zone, which would make a
    backtest depend on the machine); a ``date`` is its midnight UTC.
    """
    if isinstance(when, bool):
        raise TypeError("a bool is not a time")
    if isinstance(when, int | np.integer):
        return int(when)
    if isinstance(when, float):
        return int(when)
    if isinstance(when, np.datetime64):
        return int(when.astype("datetime64[ms]").astype(np.int64))
    if isinstance(when, str):
        text = when.strip()
        when = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    if isinstance(when, datetime):
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return (when - _EPOCH) // timedelta(milliseconds=1)  # exact: no float rounding
    if isinstance(when, date):
        return to_ms(datetime(when.year, when.month, when.day, tzinfo=UTC))
    raise TypeError(f"cannot read a time from {type(when).__name__}")
