import re
from pathlib import Path

import numpy as np
import pytest
from training_support import synthetic_dataset

from decile.training import dataset_fingerprint
from decile.training.dataset import Dataset
from decile.training.provenance import artifact, code_commit


def _replace(ds: Dataset, **changes: object) -> Dataset:
    return Dataset(**{**ds.__dict__, **changes})


def test_the_fingerprint_changes_when_one_label_flips_and_is_stable_otherwise() -> None:
    ds = synthetic_dataset(n_rows=2_000, seed=1)
    fp = dataset_fingerprint(ds)
    assert re.fullmatch(r"[0-9a-f]{64}", fp)
    assert dataset_fingerprint(synthetic_dataset(n_rows=2_000, seed=1)) == fp  # rebuilt
    assert dataset_fingerprint(_replace(ds, x=np.ascontiguousarray(ds.x))) == fp  # C order
    assert dataset_fingerprint(_replace(ds, counts={"rows": -1})) == fp  # not content
    flipped = ds.win.copy()
    flipped[1234] = 1 - flipped[1234]
    assert dataset_fingerprint(_replace(ds, win=flipped)) != fp
    r = ds.realised_r.copy()
    r[0] += 1e-12
    assert dataset_fingerprint(_replace(ds, realised_r=r)) != fp
    assert dataset_fingerprint(_replace(ds, schema_version="other")) != fp
    assert dataset_fingerprint(_replace(ds, tf="1h")) != fp


def test_nan_payload_bits_do_not_change_the_fingerprint() -> None:
    ds = synthetic_dataset(n_rows=500, seed=2)
    x1, x2 = ds.x.copy(), ds.x.copy()
    x1[3, 4] = np.nan
    x2[3, 4] = np.frombuffer(np.uint64(0x7FF8000000000123).tobytes(), dtype=np.float64)[0]
    assert np.isnan(x2[3, 4])
    assert dataset_fingerprint(_replace(ds, x=x1)) == dataset_fingerprint(_replace(ds, x=x2))


def test_code_commit_prefers_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DECILE_CODE_COMMIT", "release-42")
    assert code_commit() == "release-42"


def test_code_commit_is_the_checkout_head_or_unknown_and_never_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("DECILE_CODE_COMMIT", raising=False)
    got = code_commit()
    assert got == "unknown" or re.fullmatch(r"[0-9a-f]{40}([0-9a-f]{24})?", got)
    monkeypatch.setenv("PATH", str(tmp_path))  # no git at all
    assert code_commit() == "unknown"


def test_artifact_names_the_file_its_sha256_and_size() -> None:
    a = artifact(b"abc")
    assert a == {
        "file": "model.onnx",
        "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "size": 3,
    }
