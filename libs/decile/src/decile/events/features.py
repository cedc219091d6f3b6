"""Feature cross-sections."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Self

import numpy as np
from pydantic import Field, model_validator

from decile.events.base import ColumnarEvent, Timeframe, UtcDatetime


class FeatureBatch(ColumnarEvent):
    """Features of every symbol for one bar close: rows = symbols, columns = schema order.

    NaN means warm-up or missing input, never zero. ``feature_schema`` is the
    schema version every consumer checks before using a column.

    ``context_names`` are per-symbol values that are not model inputs but that
    consumers of a feature row need with it, in the same message so they can
    never belong to another bar: the feature service sends the bar's ``close``
    (a candidate's entry price and its ATR in price units come from it). They
    follow the features in ``values``; :attr:`features` is the model-input part.
    """

    type_name: ClassVar[str] = "FeatureBatch"
    type: Literal["FeatureBatch"] = "FeatureBatch"
    schema_version: Literal[1] = 1
    tf: Timeframe
    bar_time: UtcDatetime
    feature_schema: Annotated[str, Field(min_length=1, max_length=64)]
    feature_names: tuple[str, ...]
    context_names: tuple[str, ...] = ()
    source_id: str = ""  # id of the BarBatch it was computed from

    @property
    def columns(self) -> tuple[str, ...]:
        return self.feature_names + self.context_names

    @property
    def float32_columns(self) -> int:
        return len(self.feature_names)

    @model_validator(mode="after")
    def _float32_features(self) -> Self:
        n = len(self.feature_names)
        features = self.values[:, :n]
        rounded = features.astype(np.float32).astype(np.float64)
        if not np.array_equal(features, rounded, equal_nan=True):
            values = self.values.copy()
            values[:, :n] = rounded
            values.setflags(write=False)
            object.__setattr__(self, "values", values)
        return self

    @property
    def features(self) -> np.ndarray:
        """The feature columns only (rows = symbols, schema order)."""
        return self.values[:, : len(self.feature_names)]
