"""deploy/prometheus: the scrape config is current and valid, the alert rules pass promtool's
checks and their unit tests, and every metric a rule uses exists (in code or planned).

promtool comes from Debian's ``prometheus`` package (``make test`` installs it); without it
these tests skip and say so.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from ops_metrics import (
    code_metrics,
    dashboard_exprs,
    known_series,
    planned_metrics,
    selectors,
    unknown_uses,
)

from tools.ops import gen_prometheus
from tools.ops.catalog import implemented

PROM = gen_prometheus.PATH.parent
RULES = sorted((PROM / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROM / "tests").glob("*.yml"))
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not installed (apt-get install -y prometheus; `make test` does it)",
)


def promtool(*args: str | Path, cwd: Path = PROM) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)


def alert_rules() -> list[dict[str, str]]:
    return [rule for path in RULES for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"]]


def test_the_checked_in_scrape_config_is_current() -> None:
    want = gen_prometheus.render()[gen_prometheus.PATH]
    assert gen_prometheus.PATH.read_text() == want, (
        "deploy/prometheus/prometheus.yml is stale: run `python -m tools.ops.generate`"
    )


def test_every_implemented_service_is_a_scrape_job_on_its_registry_port() -> None:
    cfg = yaml.safe_load(gen_prometheus.PATH.read_text())
    jobs = {j["job_name"]: j["static_configs"][0]["targets"] for j in cfg["scrape_configs"]}
    for spec in implemented():
        assert jobs[spec.name] == [f"{spec.name}:{spec.http_port}"]


@needs_promtool
def test_promtool_accepts_the_config_and_the_rules() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    result = promtool("check", "rules", *RULES)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
@pytest.mark.parametrize("unit", RULE_TESTS, ids=lambda p: p.name)
def test_alert_rule_unit_tests_pass(unit: Path) -> None:
    result = promtool("test", "rules", unit.name, cwd=unit.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test_severity_and_summary() -> None:
    tested = set()
    for unit in RULE_TESTS:
        for case in yaml.safe_load(unit.read_text())["tests"]:
            tested |= {t["alertname"] for t in case.get("alert_rule_test", ()) if t["exp_alerts"]}
    for rule in alert_rules():
        assert rule["alert"] in tested, f"{rule['alert']}: no test sees it fire"
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


def test_every_metric_a_rule_uses_exists_with_those_labels() -> None:
    known = known_series()
    problems = {r["alert"]: p for r in alert_rules() if (p := unknown_uses(r["expr"], known))}
    assert not problems, problems


def test_planned_metrics_are_not_yet_defined_and_are_all_used() -> None:
    planned, defined = planned_metrics(), code_metrics()
    done = sorted(set(planned) & set(defined))
    assert not done, f"now exported by the code, delete from planned-metrics.yml: {done}"
    exprs = [r["expr"] for r in alert_rules()] + [e for _, e in dashboard_exprs()]
    used = {name for expr in exprs for name, _ in selectors(expr)}
    unused = sorted(set(planned) - used)
    assert not unused, f"planned but used by no rule or dashboard: {unused}"
