"""deploy/grafana: provisioning and dashboards are valid, current, and query real metrics.

Every panel expression is parsed twice: by promql-parser (a PromQL parser on
PyPI) and, when promtool is installed, by Prometheus itself, as recording
rules in a generated rule file (``promtool check rules``). Every metric a
panel names is defined in libs/ or services/ or listed in
deploy/prometheus/planned-metrics.yml, with the labels the panel filters on.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import promql_parser
import pytest
import yaml
from ops_metrics import DASHBOARDS, dashboard_exprs, known_series, unknown_uses

from tools.ops import gen_grafana

PROVISIONING = DASHBOARDS.parent / "provisioning"
BOARDS = sorted(DASHBOARDS.glob("*.json"))


def test_the_checked_in_dashboards_are_current() -> None:
    want = gen_grafana.render()
    assert sorted(want) == BOARDS, "dashboards on disk differ from tools/ops/gen_grafana.py"
    for path, text in want.items():
        assert path.read_text() == text, f"{path.name} is stale: run python -m tools.ops.generate"


def test_provisioning_points_at_the_dashboards_and_the_datasource_they_use() -> None:
    ds = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    uids = {d["uid"] for d in ds["datasources"]}
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "decile.yml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"
    for path in BOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            assert panel["datasource"]["uid"] in uids, f"{path.name}: {panel['title']}"


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: p.name)
def test_dashboard_is_well_formed(path: Path) -> None:
    board = json.loads(path.read_text())
    assert board["uid"].startswith("decile-")
    assert board["title"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        assert grid["h"] > 0, panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs, panel["title"]
        assert len(refs) == len(set(refs)), panel["title"]
        assert all(t["expr"].strip() for t in panel["targets"]), panel["title"]


def test_dashboard_uids_are_unique() -> None:
    uids = [json.loads(p.read_text())["uid"] for p in BOARDS]
    assert len(uids) == len(set(uids))


@pytest.mark.parametrize(("where", "expr"), dashboard_exprs(), ids=lambda v: str(v)[:60])
def test_panel_expression_parses_and_uses_existing_metrics(where: str, expr: str) -> None:
    promql_parser.parse(expr)
    assert not unknown_uses(expr, known_series()), (where, unknown_uses(expr, known_series()))


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool not installed (apt-get install -y prometheus)")
def test_prometheus_itself_parses_every_panel_expression(tmp_path: Path) -> None:
    rules = [{"record": f"decile:panel_{i}", "expr": expr}
             for i, (_, expr) in enumerate(dashboard_exprs())]
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    result = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
