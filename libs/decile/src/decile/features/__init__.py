"""Features: one definition, two engines, a versioned schema, a health check.

Public API::

    SCHEMA, SCHEMA_VERSION, SPECS, FeatureSchema, FeatureSpec, FeatureGroup
    compute_offline(bars) -> OfflineFeatures           # training, backtests (whole histories)
    OnlineEngine(SCHEMA).update(cycle) -> matrix       # the feature service, one cycle at a time
    check_health(matrix, names) -> list[Rejection]     # training refuses, the service exports

Both engines run :func:`decile.features.definitions.define` and agree to the
bit; :mod:`decile.features.primitives` states the semantics they share.
"""

from decile.features.health import FeatureStats, check_health, feature_stats
from decile.features.offline import OfflineFeatures, compute_offline, evaluate
from decile.features.online import OnlineEngine
from decile.features.schema import (
    SCHEMA,
    SCHEMA_VERSION,
    SPECS,
    FeatureGroup,
    FeatureSchema,
    FeatureSpec,
)

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "SPECS",
    "FeatureGroup",
    "FeatureSchema",
    "FeatureSpec",
    "FeatureStats",
    "OfflineFeatures",
    "OnlineEngine",
    "check_health",
    "compute_offline",
    "evaluate",
    "feature_stats",
]
