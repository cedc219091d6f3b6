"""``decile train`` and ``decile models`` against a real PostgreSQL registry.

The commands run in-process through typer's runner with the environment a
user would set; the registry is a fresh database per test and artifacts go
to a temporary folder. The data is the bundled demo file (20 Binance pairs,
February 2021) so the test needs nothing beside the project.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

pytest.importorskip("lightgbm")

from decile.cli import app
from decile.registry import Registry

runner = CliRunner()


@pytest.fixture
def env(pg_dsn: str, tmp_path: Path) -> dict[str, str]:
    return {
        "DECILE_POSTGRES__DSN": pg_dsn,
        "DECILE_ARTIFACTS__ROOT": str(tmp_path / "models"),
        "DECILE_ACTOR": "test",
        "DECILE_CODE_COMMIT": "test",
    }


def decile(env: dict[str, str], *args: str) -> Any:
    result = runner.invoke(app, list(args), env=env)
    return result


def train(env: dict[str, str], *args: str) -> dict[str, Any]:
    result = decile(env, "train", "--json", *args)
    assert result.exit_code in (0, 1), result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def registry_call(dsn: str, work: Any) -> Any:
    async def main() -> Any:
        reg = await Registry.connect(dsn)
        try:
            return await work(reg)
        finally:
            await reg.close()

    return asyncio.run(main())


def test_train_registers_a_staging_version_with_its_report_and_artifacts(
    env: dict[str, str], pg_dsn: str
) -> None:
    doc = train(env, "--family", "entry")
    assert doc["ok"], doc
    (entry,) = doc["families"]
    assert entry["version"] == "1.0.0"
    assert entry["status"] == "staging"
    version = registry_call(pg_dsn, lambda r: r.get(entry["id"]))
    names = set(version.artifacts)
    assert {"model.onnx", "metrics.json", "report.md"} <= names
    assert any(n.endswith(".png") for n in names)
    onnx = Path(version.artifacts["model.onnx"].uri.removeprefix("file://")).read_bytes()
    metrics = version.metrics
    assert metrics["model_sha256"] == version.sha256
    assert metrics["features"][-2:] == ["side", "strategy_code"]
    assert len(onnx) == version.size
    assert 0.5 < metrics["metrics"]["test"]["auc"] < 0.8  # honest: real 5m data is hard
    listed = decile(env, "models", "list", "--json")
    assert listed.exit_code == 0
    assert entry["id"] in listed.stdout


def test_a_family_that_fails_its_feature_health_is_recorded_and_production_stays(
    env: dict[str, str], pg_dsn: str
) -> None:
    first = train(env, "--family", "entry")
    vid = first["families"][0]["id"]
    assert decile(env, "models", "promote", vid).exit_code == 0  # -> shadow
    assert decile(env, "models", "promote", vid).exit_code == 0  # -> production
    # without BTC/USDT and ETH/USDT every cross-asset feature is null: refused before fitting
    alts = "ADA/USDT,DOT/USDT,LINK/USDT,SOL/USDT,XRP/USDT,LTC/USDT,EOS/USDT,UNI/USDT"
    doc = train(env, "--family", "entry", "--symbols", alts)
    assert not doc["ok"]
    failure = doc["families"][0]["failure"]
    assert failure["stage"] == "health"
    assert failure["code"] == "FEATURE_HEALTH"
    assert "btc_ret_1" in failure["message"]
    prod = registry_call(pg_dsn, lambda r: r.production("entry"))
    assert str(prod.id) == vid
    failed = decile(env, "models", "failures", "--json")
    rows = json.loads(failed.stdout)
    assert [(r["stage"], r["code"]) for r in rows] == [("health", "FEATURE_HEALTH")]


def test_too_few_rows_is_a_recorded_failure_for_every_family(
    env: dict[str, str], pg_dsn: str
) -> None:
    doc = train(env, "--start", "2021-02-01", "--end", "2021-02-05")
    assert not doc["ok"]
    assert [f["failure"]["code"] for f in doc["families"]] == ["TOO_FEW_ROWS"] * 4
    attempts = registry_call(pg_dsn, lambda r: r.failures())
    assert {a.family for a in attempts} == {"entry", "risk", "rr", "offset"}
    assert all(a.partial_metrics["dataset_counts"]["rows"] < 2_000 for a in attempts)
    assert registry_call(pg_dsn, lambda r: r.list()) == []


def test_promotion_gate_paired_evaluation_and_rollback(env: dict[str, str], pg_dsn: str) -> None:
    v1 = train(env, "--family", "entry")["families"][0]
    v2 = train(env, "--family", "entry")["families"][0]
    assert (v1["version"], v2["version"]) == ("1.0.0", "1.1.0")
    for _ in range(2):  # staging -> shadow -> production
        assert decile(env, "models", "promote", v1["id"]).exit_code == 0
    # v2 was trained before v1 was production: no paired evaluation against it, refused
    assert decile(env, "models", "promote", v2["id"], "--to", "shadow").exit_code == 0
    refused = decile(env, "models", "promote", v2["id"], "--to", "production")
    assert refused.exit_code == 1
    assert "PAIRED_EVALUATION_MISSING" in refused.output
    assert decile(env, "models", "archive", v2["id"]).exit_code == 0
    # v3 is trained against production v1 on the same data: the same model, a paired tie
    v3 = train(env, "--family", "entry")["families"][0]
    shown = json.loads(decile(env, "models", "show", v3["id"], "--json").stdout)
    paired = shown["paired"]
    assert paired["production_id"] == v1["id"]
    assert paired["comparable"]
    assert paired["candidate"]["auc"] == paired["production"]["auc"]
    metrics = [registry_call(pg_dsn, lambda r, v=v: r.get(v["id"])).metrics for v in (v1, v3)]
    assert metrics[0]["model_sha256"] == metrics[1]["model_sha256"]  # reproducible
    assert metrics[0]["metrics"] == metrics[1]["metrics"]
    for _ in range(2):
        assert decile(env, "models", "promote", v3["id"]).exit_code == 0
    assert registry_call(pg_dsn, lambda r: r.get(v1["id"])).status == "archived"
    back = decile(env, "models", "rollback", "entry", "--reason", "test")
    assert back.exit_code == 0, back.output
    assert str(registry_call(pg_dsn, lambda r: r.production("entry")).id) == v1["id"]
    again = decile(env, "models", "rollback", "entry")
    assert again.exit_code == 1
    assert "NO_PREVIOUS_PRODUCTION" in again.output
    history = json.loads(decile(env, "models", "history", "--json").stdout)
    moves = [(h["model"], h["from"], h["to"], h["action"]) for h in history]
    assert moves == [
        (v1["id"], "staging", "shadow", "promote"),
        (v1["id"], "shadow", "production", "promote"),
        (v2["id"], "staging", "shadow", "promote"),
        (v2["id"], "shadow", "archived", "archive"),
        (v3["id"], "staging", "shadow", "promote"),
        (v1["id"], "production", "archived", "archive"),
        (v3["id"], "shadow", "production", "promote"),
        (v3["id"], "production", "archived", "rollback"),
        (v1["id"], "archived", "production", "rollback"),
    ]
