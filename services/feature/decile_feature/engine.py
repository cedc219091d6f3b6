"""The online engine behind an idempotent front: a cycle is applied to state once.

JetStream may redeliver the cycle the service was handling when it failed;
applying it twice would advance every recurrence twice. The last input id and
its output are kept, so a redelivery gets the same output and leaves the state
alone.
"""

from __future__ import annotations

import numpy as np

from decile.features import SCHEMA
from decile.features.online import OnlineEngine
from decile.market.bars import Bars


class Featuriser:
    def __init__(self) -> None:
        self.engine = OnlineEngine(SCHEMA)
        self._last: tuple[str, tuple[str, ...], np.ndarray] | None = None
        self.last_ts: int | None = None

    def apply(self, batch_id: str, cycle: Bars) -> tuple[tuple[str, ...], np.ndarray]:
        if self._last is not None and self._last[0] == batch_id:
            return self._last[1], self._last[2]
        ts = int(cycle.ts[0]) if len(cycle) else None
        if ts is not None and self.last_ts is not None and ts <= self.last_ts:
            raise ValueError(f"cycle {ts} is not after the last applied one ({self.last_ts})")
        matrix = self.engine.update(cycle)
        symbols = cycle.row_names()
        self._last = (batch_id, symbols, matrix)
        self.last_ts = ts
        return symbols, matrix
