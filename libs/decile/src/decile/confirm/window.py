"""One candidate's open confirmation window: what it waits for, what it has seen.

A window opens when a candidate arrives. Its first bar is the first
``window_tf`` bar that opens at or after the candidate's bar close; it is
complete when ``need`` distinct bars of ``[start, end)`` have arrived and
expires ``max_wait_s`` after ``end`` (the moment its last bar closes). Times
are bar times (event time), never a clock read here: the caller passes ``now``.

The window is immutable: :meth:`Window.add_bar` returns a new window, or the
same object when the bar is outside it or already seen (a redelivered bar
changes nothing). :meth:`Window.to_dict` / :meth:`Window.from_dict` are the
persisted form, so the service can restore its open windows after a restart
and still decide each candidate exactly once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NamedTuple, TypeAlias

import numpy as np
import numpy.typing as npt

from decile.confirm.config import ConfirmConfig
from decile.confirm.flow import flow_features
from decile.events.signals import CandidateSignal
from decile.market.bars import Bars
from decile.market.timeframes import Timeframe, align, parse, to_ms

__all__ = ["WINDOW_FORMAT", "BarLike", "FlowBar", "Window", "flow_bars", "from_ms"]

WINDOW_FORMAT: Final = 1
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class FlowBar(NamedTuple):
    """One bar of the window timeframe: open time (ms, UTC) and OHLCV."""

    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float


BarLike: TypeAlias = FlowBar | tuple[int, float, float, float, float, float]
"""A bar as the service may hold it: a :class:`FlowBar` or a plain ``(ts, o, h, l, c, v)``."""


def from_ms(ms: int) -> datetime:
    """UTC datetime of epoch milliseconds (exact: no float on the way)."""
    return _EPOCH + timedelta(milliseconds=ms)


def flow_bars(bars: Bars) -> tuple[FlowBar, ...]:
    """Rows of ``bars`` as :class:`FlowBar` tuples (symbol dropped: select it first)."""
    cols = [bars.ts.tolist(), *(getattr(bars, f).tolist() for f in FlowBar._fields[1:])]
    return tuple(FlowBar(int(t), *map(float, v)) for t, *v in zip(*cols, strict=True))


def _frame(symbol: str, rows: tuple[FlowBar, ...]) -> Bars:
    if not rows:
        return Bars.empty((symbol,))
    a: npt.NDArray[np.float64] = np.asarray([r[1:] for r in rows], dtype=np.float64)
    return Bars.from_arrays(symbol, [r.ts for r in rows], *a.T)


@dataclass(frozen=True, slots=True)
class Window:
    """The open window of ``candidate``: bars needed, bars seen, and when it goes stale.

    ``baseline`` holds the bars of ``[start - baseline_bars * tf, start)``
    seen at open or added later (the z-score reference); ``bars`` the window's
    own bars. Both in bar-time order, one per open time.
    """

    candidate: CandidateSignal
    opened_at: datetime
    deadline: datetime
    tf: Timeframe
    need: int
    baseline_bars: int
    baseline: tuple[FlowBar, ...] = ()
    bars: tuple[FlowBar, ...] = ()

    # -- opening ------------------------------------------------------------
    @classmethod
    def open(
        cls,
        candidate: CandidateSignal,
        config: ConfirmConfig,
        *,
        opened_at: datetime,
        history: Bars | Iterable[BarLike] = (),
    ) -> Window:
        """Open the window of ``candidate`` at ``opened_at`` (the caller's ``now``).

        ``history``: recent ``window_tf`` bars of the candidate's symbol (a
        ``Bars`` may hold other symbols: they are ignored). Those before the
        window become the baseline; any already inside it (the candidate came
        late) count as seen, so a late candidate is not stale for nothing.
        """
        if opened_at.tzinfo is None:
            raise ValueError("opened_at must carry a zone (a naive time would be the host's)")
        tf = config.window_tf
        close_ms = to_ms(candidate.bar_time) + parse(candidate.tf).ms
        start = align(close_ms + tf.ms - 1, tf)  # first window bar opening at/after the close
        end = start + config.window_bars * tf.ms
        deadline = from_ms(end) + timedelta(seconds=config.max_wait_s)
        rows = (
            flow_bars(history.select((candidate.symbol,)))
            if isinstance(history, Bars)
            else tuple(FlowBar(*r) for r in history)
        )
        window = cls(
            candidate=candidate,
            opened_at=opened_at.astimezone(UTC),
            deadline=deadline,
            tf=tf,
            need=config.window_bars,
            baseline_bars=config.baseline_bars,
        )
        ordered = sorted(rows, key=lambda r: r.ts)  # of two copies of a bar time, the first wins
        return window.add_bars(ordered)

    # -- bars ---------------------------------------------------------------
    @property
    def start_ms(self) -> int:
        """Open time of the window's first bar (ms)."""
        close_ms = to_ms(self.candidate.bar_time) + parse(self.candidate.tf).ms
        return align(close_ms + self.tf.ms - 1, self.tf)

    @property
    def end_ms(self) -> int:
        """Close time of the window's last bar (ms): the earliest the decision can be."""
        return self.start_ms + self.need * self.tf.ms

    def add_bar(self, bar: BarLike) -> Window:
        """This window with ``bar`` seen; ``self`` when it is outside, misaligned or a repeat.

        A bar of the window counts towards it; a bar of the baseline range
        (``[start - baseline_bars * tf, start)``) that the baseline lacks fills
        it: a candidate may open before the cross-section of its own bar, which
        belongs to its baseline, has been seen. The first copy of a bar time
        wins: redelivery cannot change a decision.
        """
        return self.add_bars((bar,))

    def add_bars(self, bars: Iterable[BarLike]) -> Window:
        """:meth:`add_bar` for each of ``bars`` in order, with one copy of the window."""
        tf_ms = self.tf.ms
        start = self.start_ms
        end, lo = start + self.need * tf_ms, start - self.baseline_bars * tf_ms
        seen = {s.ts: s for s in self.bars}
        base = {s.ts: s for s in self.baseline}
        for bar in bars:
            b = bar if isinstance(bar, FlowBar) else FlowBar(*bar)
            if b.ts % tf_ms:
                continue
            if start <= b.ts < end:
                seen.setdefault(b.ts, b)
            elif lo <= b.ts < start:
                base.setdefault(b.ts, b)
        if len(seen) == len(self.bars) and len(base) == len(self.baseline):
            return self
        return replace(self, bars=tuple(sorted(seen.values(), key=lambda r: r.ts)),
                       baseline=tuple(sorted(base.values(), key=lambda r: r.ts)))

    @property
    def complete(self) -> bool:
        """Every bar of the window has been seen (always true for a 0-bar window)."""
        return len(self.bars) >= self.need

    def expired(self, now: datetime) -> bool:
        """Incomplete and past its deadline: decide it stale now."""
        return not self.complete and now >= self.deadline

    def ready(self, now: datetime) -> bool:
        """Time to decide: complete (model) or expired (stale)."""
        return self.complete or self.expired(now)

    @property
    def last_close(self) -> float | None:
        """Close of the window's last bar: the price at the decision, when there is one."""
        return self.bars[-1].close if self.bars else None

    def window_frame(self) -> Bars:
        return _frame(self.candidate.symbol, self.bars)

    def baseline_frame(self) -> Bars:
        return _frame(self.candidate.symbol, self.baseline)

    def features(
        self, config: ConfirmConfig, htf_trend_pct: float | None = None
    ) -> npt.NDArray[np.float64]:
        """The flow feature row of this window (see :func:`decile.confirm.flow.flow_features`)."""
        return flow_features(
            self.candidate,
            self.window_frame(),
            htf_trend_pct,
            baseline=self.baseline_frame(),
            atr_edges=config.atr_edges,
        )

    # -- persistence --------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state (``json.dumps`` takes it as is); :meth:`from_dict` inverts it."""
        return {
            "format": WINDOW_FORMAT,
            "candidate": self.candidate.model_dump(mode="json"),
            "opened_at": self.opened_at.isoformat(),
            "deadline": self.deadline.isoformat(),
            "tf": self.tf.value,
            "need": self.need,
            "baseline_bars": self.baseline_bars,
            "baseline": [list(r) for r in self.baseline],
            "bars": [list(r) for r in self.bars],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Window:
        """Rebuild a persisted window; ``ValueError`` names what is wrong with ``d``."""
        if d.get("format") != WINDOW_FORMAT:
            raise ValueError(f"window format {d.get('format')!r} is not {WINDOW_FORMAT}")
        try:
            rows = {k: tuple(_bar(r) for r in d[k]) for k in ("baseline", "bars")}
            need, base_n = int(d["need"]), int(d["baseline_bars"])
            window = cls(
                candidate=CandidateSignal.model_validate(d["candidate"]),
                opened_at=_utc(d["opened_at"]),
                deadline=_utc(d["deadline"]),
                tf=parse(d["tf"]),
                need=need,
                baseline_bars=base_n,
                baseline=rows["baseline"],
                bars=rows["bars"],
            )
        except (KeyError, TypeError) as err:
            raise ValueError(f"window state unreadable: {err!r}") from err
        if need < 0 or base_n < 0:
            raise ValueError("window state: need and baseline_bars must be >= 0")
        return window


def _bar(r: Any) -> FlowBar:
    if len(r) != len(FlowBar._fields):
        raise ValueError(f"a bar is [ts, open, high, low, close, volume], got {r!r}")
    return FlowBar(int(r[0]), *(float(x) for x in r[1:]))


def _utc(v: Any) -> datetime:
    t = datetime.fromisoformat(str(v))
    if t.tzinfo is None:
        raise ValueError(f"persisted time {v!r} has no zone")
    return t.astimezone(UTC)
