"""Artifact stores: local disk and a real JetStream Object Store bucket."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import nats
import pytest

from decile.registry import (
    ArtifactCorrupt,
    ArtifactNotFound,
    ArtifactRef,
    ArtifactSettings,
    ArtifactStore,
    LocalArtifacts,
    ObjectStoreArtifacts,
    fetch_verified,
    open_artifacts,
)


async def test_local_put_get_exists_and_atomic_write(tmp_path: Path) -> None:
    store = await open_artifacts(ArtifactSettings(root=tmp_path / "models"))
    assert isinstance(store, LocalArtifacts)
    assert isinstance(store, ArtifactStore)
    data = b"\x08\x01onnx" * 1000
    ref = await store.put("entry/abc/model.onnx", data)
    path = tmp_path / "models" / "entry" / "abc" / "model.onnx"
    assert ref == ArtifactRef(path.resolve().as_uri(), hashlib.sha256(data).hexdigest(), len(data))
    assert ref.uri.startswith("file:///")
    assert await store.get("entry/abc/model.onnx") == data == await store.get(ref.uri)
    assert await store.exists("entry/abc/model.onnx")
    assert await store.exists(ref.uri)
    assert not await store.exists("entry/abc/report.md")
    assert os.listdir(path.parent) == ["model.onnx"]  # no temp file left behind
    await store.put("entry/abc/model.onnx", b"replaced")
    assert path.read_bytes() == b"replaced"
    with pytest.raises(ArtifactNotFound, match="ARTIFACT_NOT_FOUND"):
        await store.get("entry/abc/missing.onnx")
    for bad in ("../escape", "/abs", "a//b", ""):
        with pytest.raises(ValueError, match="INVALID_ARTIFACT_KEY"):
            await store.put(bad, b"x")


async def test_fetch_verified_detects_a_corrupted_file(tmp_path: Path) -> None:
    store = LocalArtifacts(tmp_path)
    ref = await store.put("risk/1/model.onnx", b"good model bytes")
    assert await fetch_verified(store, ref) == b"good model bytes"
    (tmp_path / "risk" / "1" / "model.onnx").write_bytes(b"evil model bytes")
    with pytest.raises(ArtifactCorrupt) as err:
        await fetch_verified(store, ref)
    actual = hashlib.sha256(b"evil model bytes").hexdigest()
    assert err.value.code == "ARTIFACT_CORRUPT"
    assert ref.sha256 in str(err.value)
    assert actual in str(err.value)
    assert (err.value.expected, err.value.actual) == (f"sha256={ref.sha256}", f"sha256={actual}")


async def test_artifact_refs_and_settings_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="INVALID_SHA256"):
        ArtifactRef("file:///x", "not-a-digest", 1)
    with pytest.raises(ValueError, match="ARTIFACT_BACKEND_NEEDS_NATS"):
        await open_artifacts(ArtifactSettings(backend="nats"))
    with pytest.raises(ValueError, match="extra"):
        ArtifactSettings(bucket_name="x")  # type: ignore[call-arg]


async def test_object_store_round_trips_a_large_blob(nats_url: str, nats_namespace: str) -> None:
    bucket = f"decile-models-{nats_namespace}"
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    try:
        store = await open_artifacts(ArtifactSettings(backend="nats", bucket=bucket), nc)
        assert isinstance(store, ObjectStoreArtifacts)
        blob = os.urandom(1536 * 1024)  # 1.5 MiB: more than one NATS message, many chunks
        ref = await store.put("entry/abc/model.onnx", blob)
        assert ref.uri == f"nats-os://{bucket}/entry/abc/model.onnx"
        assert (ref.sha256, ref.size) == (hashlib.sha256(blob).hexdigest(), len(blob))
        assert await store.get(ref.uri) == blob
        assert await fetch_verified(store, ref) == blob
        # a fresh client (another host) reads it by uri alone
        other = ObjectStoreArtifacts(js, bucket)
        assert await other.get("entry/abc/model.onnx") == blob
        assert await other.exists(ref.uri)
        assert not await other.exists("entry/abc/nope")
        with pytest.raises(ArtifactNotFound):
            await other.get(f"nats-os://{bucket}/entry/abc/nope")
        wrong = ArtifactRef(ref.uri, hashlib.sha256(b"other").hexdigest(), ref.size)
        with pytest.raises(ArtifactCorrupt):
            await fetch_verified(store, wrong)
    finally:
        await js.delete_object_store(bucket)
        await nc.close()
