"""Registry tables, version numbering, lookups and failed attempts on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from registry_support import add, entry_metrics, quantile_metrics

from decile.registry import ModelNotFound, Registry


async def test_connect_applies_the_registry_migration_once(pg_dsn: str) -> None:
    async with Registry.connect(pg_dsn):
        pass
    async with Registry.connect(pg_dsn):  # a second start applies nothing new
        pass
    conn = await asyncpg.connect(pg_dsn)
    try:
        tables = {
            r["table_name"]
            for r in await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        }
        applied = [r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")]
    finally:
        await conn.close()
    assert {"model_versions", "promotions", "failed_attempts"} <= tables
    assert applied.count("0002_model_registry.sql") == 1


async def test_the_database_itself_refuses_a_second_production(
    registry: Registry, pg_dsn: str
) -> None:
    a, b = await add(registry), await add(registry)
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute("UPDATE model_versions SET status = 'production' WHERE id = $1", a.id)
        with pytest.raises(asyncpg.UniqueViolationError, match="one_production"):
            await conn.execute(
                "UPDATE model_versions SET status = 'production' WHERE id = $1", b.id
            )
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE model_versions SET status = 'live' WHERE id = $1", b.id)
    finally:
        await conn.close()


async def test_register_numbers_minor_on_same_schema_and_major_on_a_new_one(
    registry: Registry,
) -> None:
    v1 = await add(registry, schema="s1")
    v2 = await add(registry, schema="s1", parent=v1)
    v3 = await add(registry, schema="s2")
    v4 = await add(registry, schema="s2")
    other = await add(registry, "risk", schema="s2", metrics=quantile_metrics())
    assert [v.version for v in (v1, v2, v3, v4)] == ["1.0.0", "1.1.0", "2.0.0", "2.1.0"]
    assert other.version == "1.0.0"  # numbering is per family
    assert {v.status for v in (v1, v2, v3, v4, other)} == {"staging"}
    assert v2.parent_id == v1.id
    assert v1.parent_id is None
    assert v1.id.version == 7
    assert v1.label == "entry@1.0.0"
    assert v1.artifacts["model.onnx"] == v1.artifact_ref
    assert v1.size == v1.size_bytes
    assert v1.metrics == entry_metrics()


async def test_concurrent_registers_of_one_family_never_collide(
    registry: Registry, pg_dsn: str
) -> None:
    async with Registry.connect(pg_dsn) as other:
        made = await asyncio.gather(
            *(add(r, metrics=entry_metrics(auc=0.6 + i / 100)) for i, r in
              enumerate([registry, other] * 4))
        )
    assert sorted(v.version for v in made) == [f"1.{i}.0" for i in range(8)]


async def test_register_refuses_an_unknown_family_and_a_missing_parent(
    registry: Registry,
) -> None:
    with pytest.raises(ValueError, match="UNKNOWN_FAMILY"):
        await add(registry, "nope")
    with pytest.raises(ModelNotFound) as err:
        await registry.register(
            "entry", schema_version="s1", metrics={}, artifact=(await add(registry)).artifact_ref,
            artifacts={}, data_fingerprint="", parent_id=uuid.uuid4(),
        )
    assert err.value.code == "PARENT_NOT_FOUND"
    assert [v.version for v in await registry.list("entry")] == ["1.0.0"]


async def test_get_by_uuid_string_and_family_at_version(registry: Registry) -> None:
    v1 = await add(registry)
    v2 = await add(registry)
    assert await registry.get(v1.id) == v1
    assert await registry.get(str(v2.id)) == v2
    assert await registry.get("entry@1.1.0") == v2
    for missing in ("entry@9.9.9", "risk@1.0.0", str(uuid.uuid4()), "garbage", "entry@production"):
        with pytest.raises(ModelNotFound, match="MODEL_NOT_FOUND") as err:
            await registry.get(missing)
        assert err.value.code == "MODEL_NOT_FOUND"


async def test_list_is_newest_first_and_filters(registry: Registry) -> None:
    e1 = await add(registry)
    r1 = await add(registry, "risk", metrics=quantile_metrics())
    e2 = await add(registry)
    await registry.promote(e1.id, actor="t")
    assert [v.id for v in await registry.list()] == [e2.id, r1.id, e1.id]
    assert [v.id for v in await registry.list("entry")] == [e2.id, e1.id]
    assert [v.id for v in await registry.list(status="shadow")] == [e1.id]
    assert [v.id for v in await registry.list("entry", "staging")] == [e2.id]
    assert await registry.shadow("entry") == await registry.get("entry@shadow")
    assert await registry.production("entry") is None


async def test_record_failure_round_trips(registry: Registry) -> None:
    first = await registry.record_failure(
        "entry", stage="health", code="FEATURE_HEALTH", message="btc_ret_1 all null",
        partial_metrics={"dataset_counts": {"rows": 12}, "ratio": float("nan")},
        input_fingerprint="abc",
    )
    second = await registry.record_failure("risk", stage="parity", code="ONNX_PARITY_FAILED",
                                           message="diff")
    assert [f.id for f in await registry.failures()] == [second.id, first.id]
    (got,) = await registry.failures("entry")
    assert got == first
    assert got.partial_metrics == {"dataset_counts": {"rows": 12}, "ratio": None}
    assert (got.stage, got.code, got.input_fingerprint) == ("health", "FEATURE_HEALTH", "abc")
    assert (await registry.failures("risk"))[0].partial_metrics is None
