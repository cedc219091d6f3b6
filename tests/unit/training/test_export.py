import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lightgbm")
pytest.importorskip("onnxmltools")
pytest.importorskip("onnxruntime")

from decile.features import SCHEMA
from decile.market.loaders import load
from decile.testing.probes import SHARED_DATA
from decile.training.dataset import Dataset, build_dataset, dataset_fingerprint
from decile.training.export import (
    onnx_parity,
    predict_onnx,
    to_onnx,
    top_decile_agreement,
    train_family,
    walk_forward_metrics,
)
from decile.training.models import TrainConfig, fit_family
from decile.training.split import chronological_split
from decile.training.writeup import verdict

SMALL = TrainConfig(num_boost_round=100, early_stopping_rounds=20)
NFI = SHARED_DATA / "binance-spot-5m-nfi"


@pytest.fixture(scope="module")
def entry_dir(tmp_path_factory: pytest.TempPathFactory, demo_dataset: Dataset) -> Path:
    out = tmp_path_factory.mktemp("entry")
    train_family(demo_dataset, out, "entry", config=SMALL)
    return out


def test_train_family_writes_model_onnx_and_metrics_json_with_its_sha256(entry_dir: Path) -> None:
    doc = json.loads((entry_dir / "metrics.json").read_text())
    onnx_bytes = (entry_dir / "model.onnx").read_bytes()
    assert doc["model_sha256"] == hashlib.sha256(onnx_bytes).hexdigest()
    assert doc["features"] == [*SCHEMA.names, "side", "strategy_code"]
    assert doc["schema_version"]
    assert doc["split"]["val_start_ms"] < doc["split"]["test_start_ms"]
    assert doc["training_window_ms"][1] < doc["split"]["val_start_ms"]
    assert doc["hyperparameters"]["lightgbm"]["deterministic"] is True
    assert doc["calibration"]["method"] == "platt"
    for key in ("auc", "pr_auc", "log_loss", "ece"):
        assert 0.0 <= doc["metrics"]["test"][key] <= 1.0 or key == "log_loss"
    sel = doc["metrics"]["selectivity_test"]
    assert set(sel) == {"all", *doc["strategy_ids"]}
    assert set(doc["reference_distributions"]["features"]) == set(doc["features"])


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_metrics_json_records_provenance_importance_and_per_cycle_selectivity(
    entry_dir: Path, demo_dataset: Dataset
) -> None:
    doc = json.loads((entry_dir / "metrics.json").read_text())
    onnx_bytes = (entry_dir / "model.onnx").read_bytes()
    assert doc["data_fingerprint"] == dataset_fingerprint(demo_dataset)
    assert doc["code_commit"]
    assert doc["artifact"] == {
        "file": "model.onnx",
        "sha256": doc["model_sha256"],
        "size": len(onnx_bytes),
    }
    assert set(doc["calibration"]) == {"on", "method", "a", "b"}
    assert doc["calibration"]["on"] == "logit(onnx probability)"
    for kind in ("gain", "shap"):
        ranking = doc["importance"][kind]
        assert set(ranking) == set(doc["features"])
        assert list(ranking.values()) == sorted(ranking.values(), reverse=True)  # file order
    for group in doc["metrics"]["selectivity_test"].values():
        assert group["top_decile_per_cycle"]["n"] >= group["top_decile"]["n"]
    assert doc["report_files"] == [
        "report.md",
        "calibration.png",
        "deciles.png",
        "cumulative_r.png",
    ]


def test_the_report_holds_the_verdict_the_tables_and_valid_pngs(entry_dir: Path) -> None:
    doc = json.loads((entry_dir / "metrics.json").read_text())
    md = (entry_dir / "report.md").read_text()
    assert f"**Verdict.** {verdict(doc)}" in md
    assert "Test AUC" in verdict(doc)
    for heading in ("## Data and split", "## Metrics", "## Selectivity", "## Feature importance"):
        assert heading in md
    for text in ("top decile per cycle", "| auc |", "validation starts", "UTC", "ONNX parity"):
        assert text in md
    top_gain = next(iter(doc["importance"]["gain"]))
    assert f"| 1 | `{top_gain}` |" in md
    for name in doc["report_files"][1:]:
        assert f"]({name})" in md  # embedded with a relative link
        data = (entry_dir / name).read_bytes()
        assert data[:8] == PNG_SIGNATURE
        assert len(data) > 1024


def test_a_quantile_family_reports_pinball_coverage_and_one_plot(
    tmp_path: Path, demo_dataset: Dataset
) -> None:
    doc = train_family(demo_dataset, tmp_path, "risk", config=SMALL)
    assert doc["report_files"] == ["report.md", "quantile_deciles.png"]
    md = (tmp_path / "report.md").read_text()
    assert "best constant" in md
    assert "Coverage" in md
    assert "| pinball_best_constant |" in md
    assert "## Selectivity" not in md
    png = (tmp_path / "quantile_deciles.png").read_bytes()
    assert png[:8] == PNG_SIGNATURE
    assert len(png) > 1024
    assert doc["calibration"] is None


def test_golden_pairs_reproduce_through_onnx_runtime(entry_dir: Path) -> None:
    doc = json.loads((entry_dir / "metrics.json").read_text())
    onnx_bytes = (entry_dir / "model.onnx").read_bytes()
    x = np.array(doc["golden"]["input"], dtype=np.float64)  # NaN was written as null
    got = predict_onnx(onnx_bytes, x, binary=True)
    np.testing.assert_allclose(got, doc["golden"]["raw_output"], atol=1e-5)


@pytest.mark.parametrize("family", ["entry", "risk", "rr", "offset"])
def test_onnx_matches_lightgbm_on_the_test_block(demo_dataset: Dataset, family: str) -> None:
    sp = chronological_split(demo_dataset.ts, horizon=6, bar_ms=300_000)
    model = fit_family(demo_dataset, sp, family, SMALL)
    par = onnx_parity(model, to_onnx(model), demo_dataset.x[sp.test])
    assert par["fraction_within_tol"] >= 0.9999
    assert par["same_top_decile"]


def test_retraining_writes_the_same_model_bytes_and_metrics(
    tmp_path: Path, demo_dataset: Dataset, entry_dir: Path
) -> None:
    doc = train_family(demo_dataset, tmp_path, "entry", config=SMALL)
    assert (tmp_path / "model.onnx").read_bytes() == (entry_dir / "model.onnx").read_bytes()
    assert doc == json.loads((entry_dir / "metrics.json").read_text())


def test_walk_forward_reports_one_chronological_test_block_per_fold(
    demo_dataset: Dataset,
) -> None:
    folds = walk_forward_metrics(demo_dataset, "entry", n_windows=2, config=SMALL)
    assert len(folds) == 2
    assert folds[0]["split"]["test_start_ms"] < folds[1]["split"]["val_start_ms"]
    assert all(0.0 <= f["test"]["auc"] <= 1.0 for f in folds)


@pytest.mark.skipif(not NFI.is_dir(), reason="110-pair dataset not on this machine")
def test_the_full_dataset_trains_on_a_few_pairs(tmp_path: Path) -> None:
    pairs = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "LINK/USDT", "DOGE/USDT"]
    bars = load(NFI, symbols=pairs, start="2021-01-01", end="2021-02-01").bars
    if len(bars) == 0:
        pytest.skip("pairs not in this copy of the dataset")
    ds = build_dataset(bars)
    doc = train_family(ds, tmp_path, "entry", config=SMALL)
    assert doc["parity"]["same_top_decile"]
    assert doc["metrics"]["test"]["rows"] > 0


def test_rows_swapped_only_within_a_tie_at_the_cut_still_count_as_the_same_selection() -> None:
    ref = np.r_[np.full(50, 0.2), np.full(50, 0.1)]  # 50 tied rows; the top decile takes 10
    got = ref + np.linspace(0, 1e-7, 100)  # float32-sized noise reorders the tie
    agreement = top_decile_agreement(ref, got)
    assert agreement["same_top_decile"]
    assert agreement["top_decile_rows_swapped_at_tied_cut"] > 0
    got[-1] = 1.0  # a real disagreement: a low-scored row jumps to the top
    assert not top_decile_agreement(ref, got)["same_top_decile"]


_EXPORT_SHA = """
import hashlib, sys
sys.path.insert(0, {here!r})
from training_support import synthetic_dataset
from decile.training.export import to_onnx
from decile.training.models import TrainConfig, fit_family
from decile.training.split import chronological_split
ds = synthetic_dataset(n_rows=4000, planted=2.0)
sp = chronological_split(ds.ts, horizon=6, bar_ms=300_000)
model = fit_family(ds, sp, "entry", TrainConfig(num_boost_round=20))
print(hashlib.sha256(to_onnx(model)).hexdigest())
"""


def test_the_exported_bytes_do_not_depend_on_the_process_hash_seed() -> None:
    """A model's sha256 is its identity in the registry: it must not change per process."""
    import os
    import subprocess
    import sys

    script = _EXPORT_SHA.format(here=str(Path(__file__).parent))
    shas = {
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip()
        for seed in ("1", "2", "3")
    }
    assert len(shas) == 1, shas
