"""Grafana dashboards for the fleet, generated so every panel stays consistent.

Four dashboards under ``deploy/grafana/dashboards/``: fleet overview (the
standard series every service exports), ingest, recorder, and models & risk.
Panels use only metrics the code defines or ``deploy/prometheus/planned-metrics.yml``
lists (``tests/ops/test_grafana.py`` checks). The datasource is the provisioned
one, uid ``prometheus`` (``deploy/grafana/provisioning``).

Run: ``python -m tools.ops.gen_grafana [--check]``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.ops.catalog import ROOT, write_or_check

OUT = ROOT / "deploy" / "grafana" / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
RATE = "$__rate_interval"


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[tuple[str, str], ...]  # (expr, legend)
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 12
    height: int = 8
    description: str = ""
    thresholds: tuple[tuple[str, float | None], ...] = ()  # (color, from value)
    options: dict[str, Any] = field(default_factory=dict)


def q(expr: str, legend: str = "") -> tuple[str, str]:
    return (expr, legend)


def _panel(p: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": p.unit}
    if p.thresholds:
        defaults["thresholds"] = {
            "mode": "absolute",
            "steps": [{"color": c, "value": v} for c, v in p.thresholds],
        }
    if p.kind == "timeseries":
        options: dict[str, Any] = {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
        if p.thresholds:
            defaults["custom"] = {"thresholdsStyle": {"mode": "line"}}
    else:
        options = {"colorMode": "background", "graphMode": "none", "textMode": "value_and_name",
                   "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
    options.update(p.options)
    return {
        "id": pid,
        "type": p.kind,
        "title": p.title,
        "description": p.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": p.height, "w": p.width, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr,
             "legendFormat": legend, "range": p.kind == "timeseries",
             "instant": p.kind != "timeseries"}
            for i, (expr, legend) in enumerate(p.queries)
        ],
    }


def dashboard(uid: str, title: str, description: str, panels: list[Panel]) -> dict[str, Any]:
    laid: list[dict[str, Any]] = []
    x = y = row_h = 0
    for i, p in enumerate(panels, start=1):
        if x + p.width > 24:
            x, y, row_h = 0, y + row_h, 0
        laid.append(_panel(p, i, x, y))
        x, row_h = x + p.width, max(row_h, p.height)
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["decile"],
        "timezone": "utc",
        "editable": False,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "annotations": {"list": []},
        "templating": {"list": []},
        "links": [{"title": "Decile", "type": "dashboards", "tags": ["decile"],
                   "asDropdown": True}],
        "panels": laid,
    }


def _p99(metric: str, by: str, q_: float = 0.99, where: str = "") -> str:
    sel = f"{metric}_bucket{{{where}}}" if where else f"{metric}_bucket"
    return f"histogram_quantile({q_}, sum by ({by}, le) (rate({sel}[{RATE}])))"


def fleet() -> dict[str, Any]:
    return dashboard("decile-fleet", "Decile / Fleet overview",
                     "Every service: up, ready, throughput, latency, errors, dead letters.", [
        Panel("Scrape up", (q('up{fleet="decile"}', "{{job}}"),), kind="stat", width=8,
              height=5, thresholds=(("red", None), ("green", 1))),
        Panel("Ready (/readyz)", (q("decile_ready", "{{service}}"),), kind="stat", width=8,
              height=5, thresholds=(("red", None), ("green", 1))),
        Panel("Version", (q("decile_service_info", "{{service}} {{version}}"),), kind="stat",
              width=8, height=5, options={"textMode": "name", "colorMode": "none"}),
        Panel("Messages in /s", (q(f"sum by (service) (rate(decile_messages_in_total[{RATE}]))",
                                   "{{service}}"),), unit="ops"),
        Panel("Events out /s", (q("sum by (service, subject) "
                                  f"(rate(decile_messages_out_total[{RATE}]))",
                                  "{{service}} {{subject}}"),), unit="ops"),
        Panel("Handler time p99", (q(_p99("decile_handler_seconds", "service"), "{{service}}"),),
              unit="s"),
        Panel("Handler errors /s", (q("sum by (service, kind) "
                                      f"(rate(decile_errors_total[{RATE}]))",
                                      "{{service}} {{kind}}"),), unit="ops"),
        Panel("Dead letters /s", (q("sum by (service, code) "
                                    f"(rate(decile_dead_letters_total[{RATE}]))",
                                    "{{service}} {{code}}"),), unit="ops",
              description="Messages parked on dlq.<service>; any is worth a look."),
        Panel("Redeliveries and duplicates /s", (
            q(f"sum by (service) (rate(decile_redeliveries_total[{RATE}]))",
              "{{service}} redelivered"),
            q(f"sum by (service) (rate(decile_duplicates_dropped_total[{RATE}]))",
              "{{service}} duplicate dropped"),
        ), unit="ops"),
        Panel("Consumer backlog", (q("max by (stream, consumer) (decile_consumer_pending)",
                                     "{{stream}} {{consumer}}"),), width=24,
              description="Messages not yet delivered to each durable consumer."),
    ])


def ingest() -> dict[str, Any]:
    return dashboard("decile-ingest", "Decile / Ingest",
                     "Bars in, cross-sections out, data quality and freshness.", [
        Panel("Data age (newest bar open)", (
            q("time() - decile_ingest_last_bar_time_seconds", "{{tf}}"),), unit="s",
              kind="stat", width=8, height=5,
              thresholds=(("green", None), ("orange", 600), ("red", 900)),
              description="5m bars lag the clock by one interval plus the grace; "
                          "StaleMarketData fires past 900s."),
        Panel("Symbols in the last cycle", (q("decile_ingest_cycle_symbols", "{{tf}}"),),
              kind="stat", width=8, height=5, options={"colorMode": "none"}),
        Panel("Missing symbols in the last cycle", (
            q("decile_ingest_missing_symbols", "{{tf}}"),), kind="stat", width=8, height=5,
              thresholds=(("green", None), ("orange", 1))),
        Panel("Bars published /s", (q(f"sum by (tf) (rate(decile_ingest_bars_total[{RATE}]))",
                                      "{{tf}}"),), unit="ops"),
        Panel("Cycles published /s", (q("sum by (tf) "
                                        f"(rate(decile_ingest_cycles_total[{RATE}]))",
                                        "{{tf}}"),), unit="ops"),
        Panel("Quarantined bars /s", (q("sum by (reason) "
                                        f"(rate(decile_ingest_quarantined_total[{RATE}]))",
                                        "{{reason}}"),), unit="ops"),
        Panel("Gap bars (last hour)", (q("sum by (tf) (increase(decile_ingest_gap_bars_total[1h]))",
                                         "{{tf}}"),)),
        Panel("Cycle time (quality + assembly + encode)", (
            q(_p99("decile_ingest_cycle_seconds", "job", 0.5), "p50"),
            q(_p99("decile_ingest_cycle_seconds", "job"), "p99"),
        ), unit="s"),
        Panel("Events out /s", (q('sum by (subject) (rate(decile_messages_out_total'
                                  f'{{service="ingest"}}[{RATE}]))', "{{subject}}"),),
              unit="ops"),
    ])


def recorder() -> dict[str, Any]:
    return dashboard("decile-recorder", "Decile / Recorder",
                     "Every stream into PostgreSQL, idempotent on event id.", [
        Panel("Rows stored /s", (q(f"sum by (table) (rate(decile_recorder_rows_total[{RATE}]))",
                                   "{{table}}"),), unit="ops"),
        Panel("Rows already stored (replays) /s", (
            q(f"sum by (table) (rate(decile_recorder_skipped_total[{RATE}]))", "{{table}}"),),
              unit="ops"),
        Panel("Batch write time", (
            q(_p99("decile_recorder_batch_seconds", "table", 0.5), "{{table}} p50"),
            q(_p99("decile_recorder_batch_seconds", "table"), "{{table}} p99"),
        ), unit="s"),
        Panel("Messages in /s", (q('sum by (subject) (rate(decile_messages_in_total'
                                   f'{{service="recorder"}}[{RATE}]))', "{{subject}}"),),
              unit="ops"),
        Panel("Backlog per consumer", (
            q('max by (stream, consumer) (decile_consumer_pending{service="recorder"})',
              "{{stream}} {{consumer}}"),)),
        Panel("Dead letters and errors /s", (
            q('sum by (code) (rate(decile_dead_letters_total{service="recorder"}'
              f'[{RATE}]))', "dead letter {{code}}"),
            q(f'sum by (kind) (rate(decile_errors_total{{service="recorder"}}[{RATE}]))',
              "error {{kind}}"),
        ), unit="ops"),
    ])


def models() -> dict[str, Any]:
    return dashboard("decile-models", "Decile / Models and risk",
                     "Retraining triggers (age, drift, win rate) and the risk limits.", [
        Panel("Model age and the staleness limit", (
            q("max by (family) (decile_model_age_seconds)", "{{family}} age"),
            q("2 * max by (family) (decile_model_cadence_seconds)", "{{family}} limit"),
        ), unit="s"),
        Panel("Feature drift (PSI)", (
            q("max by (family, feature) (decile_inference_psi)", "{{family}} {{feature}}"),),
              thresholds=(("green", None), ("red", 0.2))),
        Panel("Win rate: rolling 500 trades and expected", (
            q("max by (family) (decile_winrate_rolling)", "{{family}} rolling"),
            q("max by (family) (decile_winrate_expected)", "{{family}} expected"),
        ), unit="percentunit"),
        Panel("Trades in the win-rate window", (
            q("max by (family) (decile_winrate_trades)", "{{family}}"),)),
        Panel("Kill switches", (q("max by (scope, key) (decile_kill_switch)",
                                  "{{scope}} {{key}}"),), kind="stat",
              thresholds=(("green", None), ("red", 1))),
        Panel("Daily P&L and the loss limit", (
            q("decile_risk_daily_pnl", "P&L today"),
            q("-decile_risk_daily_loss_limit", "loss limit"),
        )),
    ])


DASHBOARDS = {"fleet": fleet, "ingest": ingest, "recorder": recorder, "models": models}


def render() -> dict[Path, str]:
    return {OUT / f"{name}.json": json.dumps(make(), indent=2) + "\n"
            for name, make in DASHBOARDS.items()}


def main(argv: list[str]) -> int:
    stale = write_or_check(render(), check="--check" in argv)
    for path in stale:
        print(f"{'stale' if '--check' in argv else 'wrote'}: {path.relative_to(ROOT)}")
    return 1 if stale and "--check" in argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
