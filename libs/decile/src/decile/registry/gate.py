"""The promotion gate: floors every shadow/production candidate must clear, and a
paired comparison against the current production version.

Every check is returned (passed or not) so the promotion row stores what
decided, and a refusal names the metric, its value and the limit.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from decile.registry.errors import PromotionRefused
from decile.registry.models import BINARY_FAMILIES, QUANTILE_FAMILIES, ModelVersion


@dataclass(frozen=True)
class GateConfig:
    """Gate thresholds.

    Defaults: binary families (entry, confirm) need test AUC >= 0.55 and
    ECE <= 0.05; quantile families (risk, rr, offset) need test pinball <=
    pinball_best_constant (the model must beat the best constant). For
    production only, and only when a production version exists, the paired
    evaluation on the same slice: binary candidate AUC >= production AUC - 0.005;
    quantile candidate pinball <= production pinball * 1.005.
    """

    min_auc: float = 0.55
    max_ece: float = 0.05
    paired_auc_tolerance: float = 0.005
    paired_pinball_ratio: float = 1.005
    # A paired evaluation the pipeline marked ``comparable: False`` (production was
    # trained on other features) is refused unless this is set.
    allow_incomparable: bool = False

    def to_json(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class GateCheck:
    """One check: ``code`` is the refusal code when it did not pass."""

    name: str
    metric: str
    value: Any
    limit: Any
    passed: bool
    code: str
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def refusal(self, label: str, to: str) -> PromotionRefused:
        extra = f"; {self.detail}" if self.detail else ""
        return PromotionRefused(
            self.code,
            f"metric={self.metric}, value={self.value}, limit={self.limit} "
            f"({label} -> {to}){extra}",
            metric=self.metric,
            value=self.value,
            limit=self.limit,
        )


def _number(doc: Any, path: str) -> float | None:
    """A finite number at a dotted path, else None (missing, null, NaN, not a number)."""
    for part in path.split("."):
        if not isinstance(doc, dict):
            return None
        doc = doc.get(part)
    if isinstance(doc, bool) or not isinstance(doc, int | float) or not math.isfinite(doc):
        return None
    return float(doc)


def _compare(
    name: str, code: str, doc: dict[str, Any], path: str, limit: float, op: str
) -> GateCheck:
    """``value <= limit`` or ``value >= limit``; a missing value is METRIC_MISSING."""
    value = _number(doc, path)
    if value is None:
        return GateCheck(name, path, None, limit, False, "METRIC_MISSING")
    passed = value <= limit if op == "<=" else value >= limit
    return GateCheck(name, path, value, limit, passed, code)


def _floors(version: ModelVersion, config: GateConfig) -> list[GateCheck]:
    m = version.metrics
    if version.family in BINARY_FAMILIES:
        return [
            _compare("auc_floor", "AUC_BELOW_FLOOR", m, "metrics.test.auc", config.min_auc, ">="),
            _compare("ece_max", "ECE_ABOVE_MAX", m, "metrics.test.ece", config.max_ece, "<="),
        ]
    if version.family in QUANTILE_FAMILIES:
        constant = _number(m, "metrics.test.pinball_best_constant")
        if constant is None:
            missing = "metrics.test.pinball_best_constant"
            return [GateCheck("beats_constant", missing, None, None, False, "METRIC_MISSING")]
        return [
            _compare(
                "beats_constant", "PINBALL_NOT_BELOW_CONSTANT", m, "metrics.test.pinball",
                constant, "<=",
            )
        ]
    return [GateCheck("family", "family", version.family, None, False, "UNKNOWN_FAMILY")]


def _paired(version: ModelVersion, production: ModelVersion, config: GateConfig) -> GateCheck:
    paired = version.metrics.get("paired")
    label = production.label
    if not isinstance(paired, dict):
        return GateCheck(
            "paired", "paired", None, str(production.id), False, "PAIRED_EVALUATION_MISSING",
            f"no paired evaluation against production {label}: re-train or re-evaluate",
        )
    if str(paired.get("production_id")) != str(production.id):
        return GateCheck(
            "paired", "paired.production_id", paired.get("production_id"), str(production.id),
            False, "PAIRED_EVALUATION_STALE",
            f"evaluated against another version, production is now {label}: "
            "re-train or re-evaluate",
        )
    if paired.get("comparable") is False:
        why = paired.get("reason") or "not comparable"
        return GateCheck(
            "paired", "paired.comparable", False, True, config.allow_incomparable,
            "PAIRED_EVALUATION_NOT_COMPARABLE",
            f"{why}: candidate and production {label} could not be scored on the same rows",
        )
    binary = version.family in BINARY_FAMILIES
    key = "auc" if binary else "pinball"
    base = _number(paired, f"production.{key}")
    if base is None:
        return GateCheck(f"paired_{key}", f"paired.production.{key}", None, None, False,
                         "METRIC_MISSING")
    if binary:
        limit, code, op = base - config.paired_auc_tolerance, "PAIRED_AUC_WORSE", ">="
    else:
        limit, code, op = base * config.paired_pinball_ratio, "PAIRED_PINBALL_WORSE", "<="
    return _compare(f"paired_{key}", code, version.metrics, f"paired.candidate.{key}", limit, op)


def check_gate(
    version: ModelVersion,
    to: str,
    production: ModelVersion | None,
    config: GateConfig | None = None,
) -> list[GateCheck]:
    """Every check for moving ``version`` to ``to`` (shadow: floors; production: + paired)."""
    cfg = config or GateConfig()
    checks = _floors(version, cfg)
    if to == "production" and production is not None and production.id != version.id:
        checks.append(_paired(version, production, cfg))
    return checks


def gate_record(checks: list[GateCheck], config: GateConfig) -> dict[str, Any]:
    """What the promotion row stores in its ``gate`` column."""
    return {
        "passed": all(c.passed for c in checks),
        "checks": [c.to_json() for c in checks],
        "config": config.to_json(),
    }
