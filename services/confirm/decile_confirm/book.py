"""The open windows and the bars they are fed: which window is ready, and at what time.

Pure: no broker, no database, no clock read (``wall`` is passed in). A decision
here depends only on the candidate, its symbol's bars and the config, never on
how the bars and candidates consumers interleaved, so a replay decides the
same way however fast it runs and across restarts:

- a window opens with the symbol's bars already seen (:class:`BarHistory`) and
  takes the later ones as they come, baseline bars included (a candidate may
  beat the cross-section of its own bar);
- in ``event`` mode only the bar cross-sections expire windows. Their stream is
  in time order, so a cross-section closing at or past a deadline proves that
  every bar of that window which exists has been seen. A candidate's time
  proves nothing of the sort (the bars consumer may lag it), so it moves no
  deadline;
- decision times are event times: a complete window is decided at its end
  (a 0-bar window at the candidate's close), a stale one at the close of the
  first cross-section at or past its deadline, and the window opened at the
  candidate's close.

In ``wall`` mode the wall clock is ``now`` for all of these.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from decile.clock import ClockMode
from decile.confirm import ConfirmConfig, Window
from decile.confirm.window import from_ms
from decile.events import BarBatch, CandidateSignal
from decile.market.timeframes import parse, to_ms
from decile_confirm.history import BarHistory, flow_bar


@dataclass(frozen=True, slots=True)
class Ready:
    """A window to decide now: by the model (complete) or as stale, at ``decided_at``."""

    window: Window
    decided_at: datetime
    stale: bool


def candidate_close(candidate: CandidateSignal) -> datetime:
    return from_ms(to_ms(candidate.bar_time) + parse(candidate.tf).ms)


class WindowBook:
    """Open windows by candidate id, and the bar history they are opened with."""

    def __init__(self, config: ConfirmConfig, mode: ClockMode, keep: int) -> None:
        self.config = config
        self.mode = mode
        self.history = BarHistory(config.window_tf, keep)
        self.windows: dict[str, Window] = {}

    def __len__(self) -> int:
        return len(self.windows)

    # -- time -----------------------------------------------------------------
    def now(self, wall: datetime) -> datetime | None:
        """What deadlines are judged against: the wall clock, or the newest bar close
        (None before any bar: nothing expires)."""
        if self.mode == "wall":
            return wall
        newest = self.history.newest_close_ms
        return None if newest is None else from_ms(newest)

    def _ready(self, window: Window, wall: datetime) -> Ready | None:
        now = self.now(wall)
        if window.complete:
            if self.mode == "wall":
                return Ready(window, wall, stale=False)
            at = candidate_close(window.candidate) if window.need == 0 else from_ms(window.end_ms)
            return Ready(window, at, stale=False)
        if now is None or not window.expired(now):
            return None
        if self.mode == "wall":
            return Ready(window, wall, stale=True)
        first = self.history.first_close_at_or_after(to_ms(window.deadline))
        return Ready(window, from_ms(first) if first is not None else now, stale=True)

    # -- windows --------------------------------------------------------------
    def open(self, candidate: CandidateSignal, wall: datetime) -> Window | None:
        """The window of a new candidate with the bars seen so far; None if already open."""
        if candidate.id in self.windows:
            return None
        opened_at = wall if self.mode == "wall" else candidate_close(candidate)
        window = Window.open(candidate, self.config, opened_at=opened_at)
        return self._feed_history(window)

    def _feed_history(self, window: Window) -> Window:
        lo = self.first_bar_ms(window)
        return window.add_bars(self.history.bars(window.candidate.symbol, lo, window.end_ms))

    @staticmethod
    def first_bar_ms(window: Window) -> int:
        """Open time of the first baseline bar ``window`` takes."""
        return window.start_ms - window.baseline_bars * window.tf.ms

    def beyond_history(self, window: Window) -> bool:
        """Some bars ``window`` needs may have left the history: its decision may differ
        from the one an unhurried run would make (``history_bars`` too small for the lag
        between the bars and candidates consumers)."""
        return not self.history.covers(self.first_bar_ms(window))

    def ready(self, window: Window, wall: datetime) -> Ready | None:
        """``window`` to decide now, or None while it waits."""
        return self._ready(window, wall)

    def register(self, window: Window) -> None:
        self.windows[window.candidate.id] = window

    def restore(self, window: Window) -> Window:
        """A window reloaded after a restart, fed the bars it missed meanwhile, registered."""
        window = self._feed_history(window)
        self.register(window)
        return window

    def remove(self, candidate_id: str) -> None:
        self.windows.pop(candidate_id, None)

    # -- bars -----------------------------------------------------------------
    def on_bars(self, batch: BarBatch, wall: datetime) -> list[Ready]:
        """Keep a cross-section, feed it to the open windows; the windows now ready.

        Windows stay open until :meth:`remove` (after their decision is published),
        so a cross-section handled twice after a failure finds them again.
        """
        if batch.tf != self.config.window_tf.value:
            return []
        self.history.add(batch)
        if self.windows:
            bar_ms = to_ms(batch.bar_time)
            rows = {s: i for i, s in enumerate(batch.symbols)}
            for cid, window in self.windows.items():
                row = rows.get(window.candidate.symbol)
                if row is not None:
                    self.windows[cid] = window.add_bar(flow_bar(bar_ms, batch.values[row]))
        return self.due(wall)

    def due(self, wall: datetime) -> list[Ready]:
        """Every open window ready now, in decision-time then candidate-id order."""
        out = [r for w in self.windows.values() if (r := self._ready(w, wall)) is not None]
        return sorted(out, key=lambda r: (r.decided_at, r.window.candidate.id))
