"""Session fixtures: the demo feature window, four tiny trained families, their LoadedModels."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("lightgbm")
pytest.importorskip("onnxmltools")
pytest.importorskip("onnxruntime")

from serving_support import demo_window, schema_dataset, train_all, version_of

from decile.features.offline import OfflineFeatures
from decile.market.bars import Bars
from decile.registry import ModelVersion
from decile.serving import SERVING_FEATURES, LoadedModel, ModelSet, validate_model
from decile.training.dataset import Dataset


@pytest.fixture(scope="session")
def demo() -> tuple[OfflineFeatures, Bars]:
    return demo_window()


@pytest.fixture(scope="session")
def train_ds(demo: tuple[OfflineFeatures, Bars]) -> Dataset:
    return schema_dataset(demo[0])


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory: pytest.TempPathFactory, train_ds: Dataset) -> dict[str, Path]:
    return train_all(train_ds, tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def versions(model_dirs: dict[str, Path]) -> dict[str, ModelVersion]:
    return {family: version_of(d, family) for family, d in model_dirs.items()}


@pytest.fixture(scope="session")
def loaded(
    versions: dict[str, ModelVersion], model_dirs: dict[str, Path]
) -> dict[str, LoadedModel]:
    return {
        family: validate_model(v, (model_dirs[family] / "model.onnx").read_bytes(),
                               SERVING_FEATURES)
        for family, v in versions.items()
    }


@pytest.fixture(scope="session")
def model_set(loaded: dict[str, LoadedModel]) -> ModelSet:
    return ModelSet(loaded["entry"], loaded["risk"], loaded["rr"], loaded["offset"])
