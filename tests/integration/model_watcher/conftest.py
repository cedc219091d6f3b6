"""Tiny real models (trained once per session and worker), a registry, the service's env."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

pytest.importorskip("lightgbm")
pytest.importorskip("onnxmltools")

from decile.registry import LocalArtifacts, Registry
from decile.testing.models import PERMISSIVE_GATE, train_tiny, train_tiny_confirm


@pytest.fixture(scope="session")
def models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``good/entry``, ``other/entry`` (a second valid version) and ``narrow/entry``
    (one column short: the wrong ONNX input width)."""
    root = tmp_path_factory.mktemp("tiny-models")
    train_tiny(root / "good", ("entry",))
    train_tiny(root / "other", ("entry",), seed=1)
    train_tiny(root / "narrow", ("entry",), exclude_features=("rsi_14",))
    return root


@pytest.fixture(scope="session")
def confirm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real confirm version (logistic on flow rows, fleet flow settings)."""
    return train_tiny_confirm(tmp_path_factory.mktemp("tiny-confirm"))


@pytest.fixture
def confirm_without_flow(confirm_dir: Path, tmp_path: Path) -> Path:
    """The confirm version whose metrics.json lost its flow_params: no service could use it."""
    out = tmp_path / "no-flow"
    shutil.copytree(confirm_dir, out)
    doc = json.loads((out / "metrics.json").read_text())
    del doc["flow_params"]
    (out / "metrics.json").write_text(json.dumps(doc))
    return out


@pytest.fixture
def tampered_golden(models_root: Path, tmp_path: Path) -> Path:
    """``other/entry`` whose metrics.json records a golden output the model does not give."""
    out = tmp_path / "tampered"
    shutil.copytree(models_root / "other" / "entry", out)
    doc = json.loads((out / "metrics.json").read_text())
    doc["golden"]["raw_output"][0] += 0.25
    (out / "metrics.json").write_text(json.dumps(doc))
    return out


@pytest.fixture
def wrong_width(models_root: Path, tmp_path: Path) -> Path:
    """The narrow ONNX under the good metrics.json (full feature list) with its own sha256:
    every identity and schema check passes, the graph's input width does not."""
    out = tmp_path / "wrong-width"
    shutil.copytree(models_root / "other" / "entry", out)
    shutil.copy(models_root / "narrow" / "entry" / "model.onnx", out / "model.onnx")
    narrow = json.loads((models_root / "narrow" / "entry" / "metrics.json").read_text())
    doc = json.loads((out / "metrics.json").read_text())
    doc["model_sha256"] = narrow["model_sha256"]
    (out / "metrics.json").write_text(json.dumps(doc))
    return out


@pytest.fixture
def artifacts_root(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


@pytest.fixture
def store(artifacts_root: Path) -> LocalArtifacts:
    return LocalArtifacts(artifacts_root)


@pytest.fixture
async def registry(pg_dsn: str) -> AsyncIterator[Registry]:
    """Floors and paired checks opened (PERMISSIVE_GATE): these tests promote versions
    that are not better than the last one, and deliberately broken ones."""
    async with Registry.connect(pg_dsn, gate=PERMISSIVE_GATE) as reg:
        yield reg


@pytest.fixture
def watcher_env(decile_env: dict[str, str], artifacts_root: Path) -> dict[str, str]:
    return {
        **decile_env,
        "DECILE_SERVICE": "model-watcher",
        "DECILE_ARTIFACTS__ROOT": str(artifacts_root),
        "DECILE_WATCHER__RETRY_MIN_S": "0.2",
        "DECILE_WATCHER__RETRY_MAX_S": "1",
    }
