"""Which metrics exist: read from the code that defines them, or the planned list.

A rule or panel that names a metric nobody exports shows nothing and alerts on
nothing, silently. The definitions are read from the source (``counter(``,
``gauge(``, ``histogram(`` and prometheus_client's classes with a literal
name), so the check needs no service running; the series names are what
prometheus_client exposes (``_total`` for counters, ``_bucket``/``_sum``/
``_count`` for histograms).
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import promql_parser
import yaml

ROOT = Path(__file__).resolve().parents[2]
CODE_DIRS = (ROOT / "libs" / "decile" / "src", ROOT / "services")
PLANNED = ROOT / "deploy" / "prometheus" / "planned-metrics.yml"
KINDS = {"counter": "counter", "Counter": "counter", "gauge": "gauge", "Gauge": "gauge",
         "histogram": "histogram", "Histogram": "histogram", "summary": "summary",
         "Summary": "summary"}
# labels Prometheus adds to every scraped series (target labels) or to some series
TARGET_LABELS = frozenset({"job", "instance", "fleet", "__name__"})
PROMETHEUS_SERIES = {"up": frozenset(), "scrape_duration_seconds": frozenset(),
                     "scrape_samples_scraped": frozenset()}


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str
    labels: frozenset[str]
    where: str

    def series(self) -> dict[str, frozenset[str]]:
        """Exposed series name -> its labels."""
        base = self.name.removesuffix("_total") if self.kind == "counter" else self.name
        if self.kind == "counter":
            return {f"{base}_total": self.labels, f"{base}_created": self.labels}
        if self.kind in ("histogram", "summary"):
            out = {f"{base}_sum": self.labels, f"{base}_count": self.labels,
                   f"{base}_created": self.labels}
            if self.kind == "histogram":
                out[f"{base}_bucket"] = self.labels | {"le"}
            else:
                out[base] = self.labels | {"quantile"}
            return out
        return {base: self.labels}


def _literal_strings(node: ast.AST | None) -> frozenset[str] | None:
    if isinstance(node, ast.List | ast.Tuple) and all(
        isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts
    ):
        return frozenset(e.value for e in node.elts)  # type: ignore[attr-defined]
    return None


@functools.cache
def code_metrics() -> dict[str, Metric]:
    """Every metric defined with a literal name in libs/ and services/."""
    found: dict[str, Metric] = {}
    for base in CODE_DIRS:
        for path in sorted(base.rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call) or not node.args:
                    continue
                func = node.func
                fname = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                first = node.args[0]
                if fname not in KINDS or not (
                    isinstance(first, ast.Constant) and isinstance(first.value, str)
                    and first.value.startswith("decile_")
                ):
                    continue
                label_node = node.args[2] if len(node.args) > 2 else next(
                    (k.value for k in node.keywords if k.arg in ("labelnames", "labels")), None
                )
                labels = _literal_strings(label_node) or frozenset()
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                found[first.value] = Metric(first.value, KINDS[fname], labels, where)
    return found


def planned_metrics() -> dict[str, Metric]:
    data = yaml.safe_load(PLANNED.read_text()) or {}
    return {
        name: Metric(name, spec["type"], frozenset(spec.get("labels") or ()), str(PLANNED))
        for name, spec in data.items()
    }


@functools.cache
def known_series() -> dict[str, frozenset[str]]:
    """Every series name a query may use -> the labels it carries (besides target labels)."""
    out = dict(PROMETHEUS_SERIES)
    for metric in (*code_metrics().values(), *planned_metrics().values()):
        out.update(metric.series())
    return out


def selectors(expr: str) -> Iterator[tuple[str, frozenset[str]]]:
    """(metric name, label names matched) for every vector selector in ``expr``."""
    found: list[promql_parser.VectorSelector] = []
    promql_parser.walk(
        promql_parser.parse(expr),
        lambda n: found.append(n) if isinstance(n, promql_parser.VectorSelector) else None,
    )
    for sel in found:
        labels = {m.name for m in sel.matchers.matchers}
        name = sel.name or next(
            (m.value for m in sel.matchers.matchers if m.name == "__name__"), ""
        )
        yield name, frozenset(labels)


def unknown_uses(expr: str, known: dict[str, frozenset[str]]) -> list[str]:
    """Problems with the metrics an expression uses (empty when every one exists)."""
    problems = []
    for name, labels in selectors(expr):
        if name not in known:
            problems.append(f"{name}: not defined in libs/ or services/ nor planned")
            continue
        extra = labels - known[name] - TARGET_LABELS
        if extra:
            problems.append(f"{name}: has no label(s) {sorted(extra)}")
    return problems


DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
# Grafana's own variables, replaced by what Grafana would send before parsing
GRAFANA_VARS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def grafana_to_promql(expr: str) -> str:
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    return expr


def dashboard_exprs() -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target of every dashboard, Grafana variables replaced."""
    import json

    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", ()):
                where = f"{path.name}: {panel['title']} [{target['refId']}]"
                out.append((where, grafana_to_promql(target["expr"])))
    return out
