"""The model-watcher as a real process against real NATS (JetStream) and PostgreSQL.

Real tiny models (decile.testing.models) are uploaded to an on-disk artifact
store, registered and promoted; the service hears the registry's NOTIFY,
validates the bytes and announces on the test's own MODEL stream.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from model_watcher_support import (
    announced,
    jetstream,
    swap_back,
    swap_for_directory,
    truncate,
    wait_for,
    watcher,
)

from decile.confirm import FLOW_SCHEMA_VERSION
from decile.reasons import ReasonCode
from decile.registry import LocalArtifacts, ObjectStoreArtifacts, Registry
from decile.subjects import Subjects
from decile.testing.models import promote_to, register_dir


async def test_promotion_to_production_announces_the_validated_version(
    nats_url: str, nats_namespace: str, registry: Registry, store: LocalArtifacts,
    models_root: Path, watcher_env: dict[str, str],
) -> None:
    subjects = Subjects(nats_namespace)
    async with watcher(watcher_env) as w, jetstream(nats_url) as js:
        assert await announced(js, subjects) == []  # an empty registry announces nothing
        v1 = await register_dir(registry, store, "entry", models_root / "good" / "entry")
        await promote_to(registry, v1.id, "production")
        [event] = await wait_for(js, subjects, 1)
        assert (event.family, event.version, event.status) == ("entry", "1.0.0", "production")
        assert (event.sha256, event.artifact_uri) == (v1.sha256, v1.artifact_uri)
        assert (event.feature_schema, event.previous_version) == (v1.schema_version, None)
        assert event.producer == "model-watcher"
        assert w.metric("decile_model_activations_total", family="entry",
                        status="production") == 1
        assert w.metric("decile_model_serving_info", family="entry", status="production",
                        version="1.0.0") == 1

        # a second version through shadow, then production
        v2 = await register_dir(registry, store, "entry", models_root / "other" / "entry")
        await promote_to(registry, v2.id, "shadow")
        shadow = (await wait_for(js, subjects, 2))[-1]
        assert (shadow.version, shadow.status, shadow.sha256) == ("1.1.0", "shadow", v2.sha256)
        await promote_to(registry, v2.id, "production")
        live = (await wait_for(js, subjects, 3))[-1]
        assert (live.version, live.status, live.previous_version) == (
            "1.1.0", "production", "1.0.0")
        assert await w.metric_reaches("decile_model_serving_info", 1, family="entry",
                                      status="production", version="1.1.0")
        assert w.metric("decile_model_serving_info", family="entry", status="production",
                        version="1.0.0") == 0
        assert w.metric("decile_model_serving_info", family="entry", status="shadow",
                        version="1.1.0") == 0
        assert len({e.id for e in await announced(js, subjects)}) == 3
        assert await announced(js, subjects, "rejected") == []


@pytest.mark.parametrize(
    ("corruption", "code"),
    [
        ("truncated_onnx", ReasonCode.MODEL_SHA_MISMATCH),
        ("wrong_input_width", ReasonCode.MODEL_INPUT_MISMATCH),
        ("tampered_golden", ReasonCode.MODEL_GOLDEN_MISMATCH),
    ],
)
async def test_a_corrupt_version_is_rejected_and_production_keeps_its_version(
    corruption: str, code: ReasonCode, nats_url: str, nats_namespace: str,
    registry: Registry, store: LocalArtifacts, models_root: Path, watcher_env: dict[str, str],
    tampered_golden: Path, wrong_width: Path,
) -> None:
    subjects = Subjects(nats_namespace)
    async with watcher(watcher_env) as w, jetstream(nats_url) as js:
        good = await register_dir(registry, store, "entry", models_root / "good" / "entry")
        await promote_to(registry, good.id, "production")
        await wait_for(js, subjects, 1)

        source = {
            "truncated_onnx": models_root / "other" / "entry",
            "wrong_input_width": wrong_width,
            "tampered_golden": tampered_golden,
        }[corruption]
        bad = await register_dir(registry, store, "entry", source)
        if corruption == "truncated_onnx":  # the stored file changes after registration
            await asyncio.to_thread(truncate, Path(bad.artifact_uri.removeprefix("file://")))
        await promote_to(registry, bad.id, "production")

        [refusal] = await wait_for(js, subjects, 1, kind="rejected")
        assert (refusal.family, refusal.version) == ("entry", "1.1.0")
        assert refusal.reason.code == code
        assert refusal.reason.gate == "model_load"
        assert await w.metric_reaches("decile_model_rejections_total", 1, family="entry",
                                      code=code.value)
        # nothing announced for the bad version: serving keeps 1.0.0
        await asyncio.sleep(0.5)
        assert [e.version for e in await announced(js, subjects)] == ["1.0.0"]
        assert w.metric("decile_model_serving_info", family="entry", status="production",
                        version="1.0.0") == 1
        assert w.metric("decile_model_serving_info", family="entry", status="production",
                        version="1.1.0") == 0
        assert "model rejected" in w.log()


async def test_rollback_reactivates_the_previous_version(
    nats_url: str, nats_namespace: str, registry: Registry, store: LocalArtifacts,
    models_root: Path, watcher_env: dict[str, str],
) -> None:
    subjects = Subjects(nats_namespace)
    async with watcher(watcher_env) as w, jetstream(nats_url) as js:
        v1 = await register_dir(registry, store, "entry", models_root / "good" / "entry")
        await promote_to(registry, v1.id, "production")
        await wait_for(js, subjects, 1)
        v2 = await register_dir(registry, store, "entry", models_root / "other" / "entry")
        await promote_to(registry, v2.id, "production")
        await wait_for(js, subjects, 2)

        restored = await registry.rollback("entry", actor="test", reason="bad live numbers")
        assert restored.id == v1.id
        events = await wait_for(js, subjects, 3)
        back = events[-1]
        assert (back.version, back.status, back.sha256) == ("1.0.0", "production", v1.sha256)
        assert back.previous_version == "1.1.0"
        assert back.id != events[0].id  # a new activation, not a duplicate of the first
        assert await w.metric_reaches("decile_model_serving_info", 1, family="entry",
                                      status="production", version="1.0.0")
        assert w.metric("decile_model_serving_info", family="entry", status="production",
                        version="1.1.0") == 0
        assert w.metric("decile_model_activations_total", family="entry",
                        status="production") == 3


async def test_a_restart_reannounces_production_and_the_server_drops_the_duplicate(
    nats_url: str, nats_namespace: str, registry: Registry, store: LocalArtifacts,
    models_root: Path, watcher_env: dict[str, str],
) -> None:
    subjects = Subjects(nats_namespace)
    async with jetstream(nats_url) as js:
        v1 = await register_dir(registry, store, "entry", models_root / "good" / "entry")
        await promote_to(registry, v1.id, "production")
        async with watcher(watcher_env):
            [first] = await wait_for(js, subjects, 1)  # found by the resync on start
        async with watcher(watcher_env) as again:
            # ready means the first resync is done: it announced production again...
            assert again.metric("decile_model_activations_total", family="entry",
                                status="production") == 1
            assert again.metric("decile_model_serving_info", family="entry",
                                status="production", version="1.0.0") == 1
            # ...under the same event id, which JetStream's duplicate window dropped
            assert '"duplicate": true' in again.log()
            await asyncio.sleep(0.5)
            assert [e.id for e in await announced(js, subjects)] == [first.id]


async def test_a_promotion_missed_while_down_is_picked_up_on_start(
    nats_url: str, nats_namespace: str, registry: Registry, store: LocalArtifacts,
    models_root: Path, watcher_env: dict[str, str],
) -> None:
    subjects = Subjects(nats_namespace)
    async with jetstream(nats_url) as js:
        async with watcher(watcher_env):
            v1 = await register_dir(registry, store, "entry", models_root / "good" / "entry")
            await promote_to(registry, v1.id, "production")
            await wait_for(js, subjects, 1)
        # the service is down: this NOTIFY reaches nobody
        v2 = await register_dir(registry, store, "entry", models_root / "other" / "entry")
        await promote_to(registry, v2.id, "production")
        async with watcher(watcher_env) as w:
            events = await wait_for(js, subjects, 2)
            assert [(e.version, e.status) for e in events] == [
                ("1.0.0", "production"), ("1.1.0", "production")]
            assert events[-1].previous_version == "1.0.0"
            assert w.metric("decile_model_serving_info", family="entry", status="production",
                            version="1.1.0") == 1


async def test_an_unreadable_artifact_is_retried_until_it_activates(
    nats_url: str, nats_namespace: str, registry: Registry, store: LocalArtifacts,
    models_root: Path, watcher_env: dict[str, str],
) -> None:
    """An I/O error is transient (not a refusal): logged, counted, retried with backoff."""
    subjects = Subjects(nats_namespace)
    async with watcher(watcher_env) as w, jetstream(nats_url) as js:
        v1 = await register_dir(registry, store, "entry", models_root / "good" / "entry")
        path = Path(v1.artifact_uri.removeprefix("file://"))
        await asyncio.to_thread(swap_for_directory, path)  # reading it: IsADirectoryError
        await promote_to(registry, v1.id, "production")
        assert await w.metric_reaches("decile_model_watch_errors_total", 2)
        assert w.metric("decile_model_watch_pending") == 1
        assert await announced(js, subjects) == []
        assert await announced(js, subjects, "rejected") == []

        await asyncio.to_thread(swap_back, path)
        [event] = await wait_for(js, subjects, 1)
        assert (event.version, event.sha256) == ("1.0.0", v1.sha256)
        assert await w.metric_reaches("decile_model_activations_total", 1, family="entry")
        assert await w.metric_equals("decile_model_watch_pending", 0)
        assert w.proc.poll() is None


async def test_artifacts_in_a_jetstream_object_store_are_validated_and_announced(
    nats_url: str, nats_namespace: str, registry: Registry, models_root: Path,
    watcher_env: dict[str, str],
) -> None:
    subjects = Subjects(nats_namespace)
    bucket = f"{nats_namespace}-models"  # OBJ_<namespace>...: deleted with the namespace
    env = {**watcher_env, "DECILE_ARTIFACTS__BACKEND": "nats", "DECILE_ARTIFACTS__BUCKET": bucket}
    async with jetstream(nats_url) as js:
        objects = ObjectStoreArtifacts(js, bucket)
        await objects.ensure()
        v1 = await register_dir(registry, objects, "entry", models_root / "good" / "entry")
        assert v1.artifact_uri.startswith("nats-os://")
        async with watcher(env):
            await promote_to(registry, v1.id, "production")
            [event] = await wait_for(js, subjects, 1)
            assert (event.version, event.sha256, event.artifact_uri) == (
                "1.0.0", v1.sha256, v1.artifact_uri)


async def test_a_promoted_confirm_version_is_validated_on_its_flow_row_and_announced(
    nats_url: str, nats_namespace: str, registry: Registry, store: LocalArtifacts,
    confirm_dir: Path, watcher_env: dict[str, str],
) -> None:
    subjects = Subjects(nats_namespace)
    async with watcher(watcher_env) as w, jetstream(nats_url) as js:
        v1 = await register_dir(registry, store, "confirm", confirm_dir)
        await promote_to(registry, v1.id, "production")
        [event] = await wait_for(js, subjects, 1, family="confirm")
        assert (event.family, event.version, event.status) == ("confirm", "1.0.0", "production")
        assert (event.sha256, event.feature_schema) == (v1.sha256, FLOW_SCHEMA_VERSION)
        assert w.metric("decile_model_serving_info", family="confirm", status="production",
                        version="1.0.0") == 1
        assert await announced(js, subjects, "rejected", family="confirm") == []
        assert await announced(js, subjects) == []  # nothing on the entry subject


@pytest.mark.parametrize(
    ("corruption", "code"),
    [
        ("truncated_onnx", ReasonCode.MODEL_SHA_MISMATCH),
        ("no_flow_params", ReasonCode.FEATURE_SCHEMA_MISMATCH),
    ],
)
async def test_a_corrupt_confirm_version_is_rejected_and_never_announced(
    corruption: str, code: ReasonCode, nats_url: str, nats_namespace: str,
    registry: Registry, store: LocalArtifacts, confirm_dir: Path, confirm_without_flow: Path,
    watcher_env: dict[str, str],
) -> None:
    subjects = Subjects(nats_namespace)
    async with watcher(watcher_env) as w, jetstream(nats_url) as js:
        source = confirm_dir if corruption == "truncated_onnx" else confirm_without_flow
        bad = await register_dir(registry, store, "confirm", source)
        if corruption == "truncated_onnx":
            await asyncio.to_thread(truncate, Path(bad.artifact_uri.removeprefix("file://")))
        await promote_to(registry, bad.id, "production")

        [refusal] = await wait_for(js, subjects, 1, kind="rejected", family="confirm")
        assert (refusal.family, refusal.version) == ("confirm", "1.0.0")
        assert refusal.reason.code == code
        assert await w.metric_reaches("decile_model_rejections_total", 1, family="confirm",
                                      code=code.value)
        await asyncio.sleep(0.5)
        assert await announced(js, subjects, family="confirm") == []
