"""Confirm settings: the wait window, the ATR buckets and the per-bucket thresholds.

Two kinds of setting live here and must not be confused. The *flow* settings
(window, its timeframe, the baseline length, the ATR bucket edges) change what
the features mean, so a model is trained on one set of them and refuses any
other (:meth:`ConfirmConfig.flow_params`, checked by
:func:`decile.confirm.flow.flow_mismatch`). The *decision* settings (the
thresholds, inversion, the maximum wait) only change what is done with a
probability and can be tuned without retraining.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

import numpy as np

from decile.market.timeframes import Timeframe, parse

__all__ = ["FLEET_DEFAULTS", "ConfirmConfig"]

FLEET_DEFAULTS: Final[Mapping[str, Any]] = MappingProxyType(
    {"window_tf": "5m", "window_bars": 1, "baseline_bars": 30}
)
"""The flow the fleet runs: the confirm service's defaults and the trainer's.

One place for both, because a model trained on another flow is refused by
:func:`decile.confirm.flow.flow_mismatch`: the candidates' own 5m bars, one
bar of wait, 30 bars of baseline. The class defaults below (1m window) stay
the library's documented ones; :meth:`ConfirmConfig.fleet` applies these.
"""


def _finite_tuple(name: str, values: tuple[float, ...]) -> tuple[float, ...]:
    out = tuple(float(v) for v in values)
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"{name} must be finite numbers, got {values!r}")
    return out


@dataclass(frozen=True, slots=True)
class ConfirmConfig:
    """How long a candidate waits for confirmation and what decides it; checked at build.

    Defaults:

    * ``window_bars`` 3: closed bars of ``window_tf`` that must arrive after the
      candidate's bar close before deciding; 0 decides at once (the features
      then see an empty window and take their neutral values).
    * ``window_tf`` ``"1m"``: the lower timeframe the window counts in.
    * ``baseline_bars`` 30: bars of ``window_tf`` just before the window that
      the volume and return z-scores are measured against (fewer than 3 leave
      those two features at 0).
    * ``max_wait_s`` 60.0: seconds after the window's last bar should have
      closed that the window still waits for missing bars; then it vetoes as
      stale (``CONFIRM_STALE_WINDOW``). A window that is not complete by then
      is stale even when some bars came: the model never saw a partial window.
    * ``atr_edges`` (0.25, 0.6): ATR as % of the entry price; ``k`` edges make
      ``k + 1`` buckets, bucket ``b`` holds ``edges[b-1] <= atr% < edges[b]``.
      Rather than trusting the default, set them to the training candidates'
      terciles (:func:`decile.confirm.dataset.atr_edges`).
    * ``approve_at`` (0.55, 0.55, 0.55): approve when ``p >= approve_at[bucket]``.
    * ``invert_at`` (0.30, 0.30, 0.30): with ``inversion``, trade the other side
      when ``p <= invert_at[bucket]``; must be below ``approve_at`` per bucket.
    * ``inversion`` False: off by default. A low ``p`` says the candidate's
      side is unlikely to reach ``theta``; it does not say the opposite side
      clears its costs, so inversion needs its own evidence before it is on.
    """

    window_bars: int = 3
    window_tf: Timeframe = Timeframe.M1
    baseline_bars: int = 30
    max_wait_s: float = 60.0
    atr_edges: tuple[float, ...] = (0.25, 0.6)
    approve_at: tuple[float, ...] = (0.55, 0.55, 0.55)
    invert_at: tuple[float, ...] = (0.30, 0.30, 0.30)
    inversion: bool = False

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "window_tf", parse(self.window_tf))
        if self.window_bars < 0:
            raise ValueError(f"window_bars must be >= 0, got {self.window_bars}")
        if self.baseline_bars < 0:
            raise ValueError(f"baseline_bars must be >= 0, got {self.baseline_bars}")
        if not (math.isfinite(self.max_wait_s) and self.max_wait_s >= 0):
            raise ValueError(f"max_wait_s must be a finite number >= 0, got {self.max_wait_s}")
        edges = _finite_tuple("atr_edges", self.atr_edges)
        if any(e <= 0 for e in edges) or any(b <= a for a, b in itertools.pairwise(edges)):
            raise ValueError(f"atr_edges must be positive and strictly increasing, got {edges}")
        set_(self, "atr_edges", edges)
        buckets = len(edges) + 1
        for name in ("approve_at", "invert_at"):
            values = _finite_tuple(name, getattr(self, name))
            if len(values) != buckets:
                raise ValueError(
                    f"{name} needs one threshold per ATR bucket ({buckets}), got {len(values)}"
                )
            if any(not 0 <= v <= 1 for v in values):
                raise ValueError(f"{name} must lie in [0, 1], got {values}")
            set_(self, name, values)
        if any(i >= a for i, a in zip(self.invert_at, self.approve_at, strict=True)):
            raise ValueError(
                f"invert_at {self.invert_at} must be below approve_at {self.approve_at} per bucket"
            )

    @classmethod
    def fleet(cls, **overrides: Any) -> ConfirmConfig:
        """The fleet's config (:data:`FLEET_DEFAULTS`), with ``overrides`` on top."""
        return cls(**{**FLEET_DEFAULTS, **overrides})

    @classmethod
    def with_window_seconds(cls, seconds: int, **fields: Any) -> ConfirmConfig:
        """A config whose window is given in seconds: whole bars of ``window_tf`` only.

        A window that is not a whole number of bars would make the last bar
        straddle the deadline; refusing it keeps "window" one unambiguous count.
        """
        tf = parse(fields.get("window_tf", Timeframe.M1))
        if seconds < 0 or seconds % tf.seconds:
            raise ValueError(f"window of {seconds}s is not a whole number of {tf.value} bars")
        return cls(window_bars=seconds // tf.seconds, **fields)

    @property
    def buckets(self) -> int:
        return len(self.atr_edges) + 1

    @property
    def window_ms(self) -> int:
        """Length of the wait window in milliseconds (0 when deciding at once)."""
        return self.window_bars * self.window_tf.ms

    def bucket(self, atr_pct: float) -> int:
        """The ATR bucket of ``atr_pct`` (ATR as % of price); a non-finite value is bucket 0."""
        if not math.isfinite(atr_pct):
            return 0
        return int(np.searchsorted(np.asarray(self.atr_edges), atr_pct, side="right"))

    def thresholds(self, bucket: int) -> tuple[float, float | None]:
        """``(approve_at, invert_at)`` of ``bucket``; ``invert_at`` None when inversion is off."""
        return self.approve_at[bucket], self.invert_at[bucket] if self.inversion else None

    def flow_params(self) -> dict[str, Any]:
        """The settings that change what the flow features mean: a model is bound to them."""
        return {
            "window_bars": self.window_bars,
            "window_tf": self.window_tf.value,
            "baseline_bars": self.baseline_bars,
            "atr_edges": list(self.atr_edges),
        }
