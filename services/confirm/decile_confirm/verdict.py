"""A ready window -> its one ConfirmDecision (pure: the model is an argument).

Complete: flow features (with the candidate's higher-timeframe trend from its
``context``), scored by the confirm model, then :func:`decile.confirm.decide`;
with no usable model, :func:`decile.confirm.no_model` (pass or veto, as set).
Stale: :func:`decile.confirm.stale`, no model consulted. Every path derives the
decision id from the candidate id only, so a window decided twice (a restart
between publishing and deleting its row) publishes the same id and JetStream
drops the copy.
"""

from __future__ import annotations

from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from decile.confirm import HTF_TREND_FEATURE, ConfirmConfig, decide, no_model, stale
from decile.events import ConfirmDecision
from decile_confirm.book import Ready


class Scorer(Protocol):
    """What a loaded confirm model offers (:class:`decile.serving.LoadedModel`)."""

    @property
    def version(self) -> str: ...

    def predict(self, x: npt.ArrayLike) -> npt.NDArray[np.float64]: ...


def verdict(
    ready: Ready,
    config: ConfirmConfig,
    model: Scorer | None,
    without_model: Literal["pass", "veto"],
    producer: str = "confirm",
) -> ConfirmDecision:
    window, at = ready.window, ready.decided_at
    if ready.stale:
        return stale(window, config, at, producer=producer)
    c = window.candidate
    x = window.features(config, c.context.get(HTF_TREND_FEATURE))
    seen, hint = len(window.bars), window.last_close
    if model is None:
        return no_model(c, x, config, approve=without_model == "pass", decided_at=at,
                        window_bars=seen, fill_price_hint=hint, producer=producer)
    p = float(model.predict(x[None, :])[0])
    return decide(c, x, p, config, decided_at=at, model_version=model.version,
                  window_bars=seen, fill_price_hint=hint, producer=producer)
