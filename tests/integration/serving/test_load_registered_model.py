"""The model-watcher's path on real parts: a promotion is heard, the version is read back
from PostgreSQL (metrics through jsonb), fetched from the artifact store and validated."""

from __future__ import annotations

import asyncio
from pathlib import Path
from uuid import UUID

import numpy as np
import pytest

pytest.importorskip("lightgbm")
pytest.importorskip("onnxmltools")

from serving_registry_support import listening, random_schema_dataset, upload_and_register

from decile.reasons import ReasonCode
from decile.registry import GateConfig, LocalArtifacts, Registry
from decile.serving import SERVING_FEATURES, ModelRefused, ModelSet, load_version, score_cycle
from decile.training.export import train_family
from decile.training.models import TrainConfig

LENIENT = GateConfig(min_auc=0.0, max_ece=1.0)


@pytest.fixture(scope="module")
def entry_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("entry")
    train_family(random_schema_dataset(), out, "entry",
                 config=TrainConfig(num_boost_round=30), report=False)
    return out


async def test_a_promoted_version_is_heard_fetched_and_loaded(
    pg_dsn: str, tmp_path: Path, entry_dir: Path
) -> None:
    store = LocalArtifacts(tmp_path / "models")
    async with Registry.connect(pg_dsn, gate=LENIENT) as reg:
        staged = await upload_and_register(reg, store, entry_dir)
        async with listening(pg_dsn) as heard:
            await reg.promote(staged.id, "production", actor="t", skip_shadow=True)
            change = await heard.next()
        assert (change["status"], change["family"]) == ("production", "entry")
        version = await reg.get(UUID(change["id"]))
    model = await load_version(version, store, SERVING_FEATURES)
    assert (model.id, model.version, model.sha256) == (staged.id, "1.0.0", staged.sha256)
    golden = version.metrics["golden"]  # read back through jsonb
    np.testing.assert_allclose(model.raw(golden["input"]), golden["raw_output"], atol=1e-5)
    np.testing.assert_allclose(model.predict(golden["input"]), golden["output"], atol=1e-5)
    # and it scores a cross-section
    rng = np.random.default_rng(1)
    matrix = rng.standard_normal((200, len(SERVING_FEATURES) - 2)) * 40 + 50
    symbols = tuple(f"S{i:03d}/USDT" for i in range(200))
    scores = score_cycle(matrix, SERVING_FEATURES[:-2], symbols, 0, ModelSet(model), floor=0.0)
    assert scores.versions == {"entry": "1.0.0"}

    # the file on disk changes after registration: refused, never loaded
    path = Path(version.artifact_uri.removeprefix("file://"))
    await asyncio.to_thread(path.write_bytes, b"\x00" * version.size)
    with pytest.raises(ModelRefused) as e:
        await load_version(version, store, SERVING_FEATURES)
    assert e.value.code == ReasonCode.MODEL_SHA_MISMATCH
