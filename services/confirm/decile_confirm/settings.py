"""Settings of the confirm service (``DECILE_CONFIRM__*``, ``DECILE_ARTIFACTS__*``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import Field, model_validator

from decile.clock import ClockMode
from decile.config import Section, ServiceSettings
from decile.confirm import ConfirmConfig
from decile.registry import ArtifactSettings

# The fleet's flow (decile.confirm.config.FLEET_DEFAULTS: 5m window of one bar, 30 bars of
# baseline), shared with the trainer so its models fit; the rest documented on ConfirmConfig.
_D = ConfirmConfig.fleet()

# Fields mapped one to one onto ConfirmConfig (window_bars is derived: see config()).
_CONFIG_FIELDS = (
    "window_tf", "baseline_bars", "max_wait_s", "atr_edges", "approve_at", "invert_at",
    "inversion",
)


class ConfirmSection(Section):
    """``DECILE_CONFIRM__*``.

    Service settings: ``clock`` "wall" (live: now is the wall clock, expiries also
    checked every second) or "event" (replays and tests: now is event time, see the
    README); ``without_model`` "pass" (approve unscored while no confirm model is
    usable) or "veto" (``CONFIRM_NO_MODEL``); ``history_bars`` bars of ``window_tf`` kept
    in memory to open windows (1,000; at least the baseline plus the window);
    ``reconcile_s`` how often the registry is re-read for the production model (60).

    Flow and decision settings map onto :class:`decile.confirm.ConfirmConfig` (same
    names, validated by it at start) with the fleet's flow as defaults
    (``ConfirmConfig.fleet()``: one bar of ``window_tf`` "5m", what ingest publishes, and
    the trainer's defaults too). ``window_seconds`` is the alternative to ``window_bars``
    (a whole number of ``window_tf`` bars; set one, not both).
    """

    clock: ClockMode = "wall"
    without_model: Literal["pass", "veto"] = "pass"
    history_bars: Annotated[int, Field(ge=1, le=100_000)] = 1_000
    reconcile_s: Annotated[float, Field(gt=0)] = 60.0

    window_tf: Annotated[str, Field(pattern=r"^[1-9][0-9]*[mhdw]$")] = _D.window_tf.value
    window_bars: Annotated[int, Field(ge=0)] = _D.window_bars
    window_seconds: Annotated[int, Field(ge=0)] | None = None
    baseline_bars: Annotated[int, Field(ge=0)] = _D.baseline_bars
    max_wait_s: Annotated[float, Field(ge=0)] = _D.max_wait_s
    atr_edges: tuple[float, ...] = _D.atr_edges
    approve_at: tuple[float, ...] = _D.approve_at
    invert_at: tuple[float, ...] = _D.invert_at
    inversion: bool = _D.inversion

    def config(self) -> ConfirmConfig:
        fields: dict[str, Any] = {name: getattr(self, name) for name in _CONFIG_FIELDS}
        if self.window_seconds is not None:
            return ConfirmConfig.with_window_seconds(self.window_seconds, **fields)
        return ConfirmConfig(window_bars=self.window_bars, **fields)

    @property
    def history_keep(self) -> int:
        """Bars kept per symbol: never fewer than one window and its baseline need."""
        config = self.config()
        return max(self.history_bars, config.baseline_bars + config.window_bars + 1)

    @model_validator(mode="after")
    def _valid_config(self) -> Self:
        if self.window_seconds is not None and "window_bars" in self.model_fields_set:
            raise ValueError("set window_bars or window_seconds, not both")
        self.config()  # ConfirmConfig's ValueError names what is wrong
        return self


class ConfirmSettings(ServiceSettings):
    service: str = "confirm"
    artifacts: ArtifactSettings = ArtifactSettings()
    confirm: ConfirmSection = ConfirmSection()
