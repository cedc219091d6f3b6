"""Promotion gate, status order, rollback and races on a real PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from registry_support import add, assert_history_replays, entry_metrics, paired, quantile_metrics

from decile.registry import (
    GateConfig,
    ModelVersion,
    PromotionRefused,
    Registry,
    RollbackRefused,
)


async def live(reg: Registry, version: ModelVersion | None = None) -> ModelVersion:
    """``version`` (or a new passing entry version) taken through shadow to production."""
    v = version or await add(reg)
    await reg.promote(v.id, actor="t")
    return await reg.promote(v.id, actor="t")


async def test_staging_to_shadow_to_production_writes_rows_with_the_gate(
    registry: Registry,
) -> None:
    v = await add(registry)
    shadow = await registry.promote(v.label, actor="alice", reason="looks good")
    prod = await registry.promote(v.id, actor="bob")
    assert (shadow.status, prod.status) == ("shadow", "production")
    assert await registry.production("entry") == prod
    rows = await registry.history("entry")
    assert [(p.from_status, p.to_status, p.action, p.actor) for p in rows] == [
        ("staging", "shadow", "promote", "alice"),
        ("shadow", "production", "promote", "bob"),
    ]
    assert rows[0].reason == "looks good"
    assert rows[0].version == "1.0.0"
    gate = rows[1].gate
    assert gate is not None
    assert gate["passed"]
    assert {c["metric"]: c["value"] for c in gate["checks"]} == {
        "metrics.test.auc": 0.62, "metrics.test.ece": 0.02,
    }
    assert gate["config"]["min_auc"] == GateConfig().min_auc


async def test_refused_below_the_floor_names_the_metric_and_changes_nothing(
    registry: Registry,
) -> None:
    weak = await add(registry, metrics=entry_metrics(auc=0.53))
    floor = r"AUC_BELOW_FLOOR: metric=metrics\.test\.auc"
    with pytest.raises(PromotionRefused, match=floor) as e:
        await registry.promote(weak.id, actor="t")
    assert (e.value.code, e.value.metric, e.value.value, e.value.limit) == (
        "AUC_BELOW_FLOOR", "metrics.test.auc", 0.53, 0.55,
    )
    badly_calibrated = await add(registry, metrics=entry_metrics(ece=0.09))
    with pytest.raises(PromotionRefused, match="ECE_ABOVE_MAX"):
        await registry.promote(badly_calibrated.id, actor="t")
    no_auc = await add(registry, metrics=entry_metrics(auc=None))
    with pytest.raises(PromotionRefused, match=r"METRIC_MISSING: metric=metrics\.test\.auc"):
        await registry.promote(no_auc.id, actor="t")
    constant = await add(registry, "risk", metrics=quantile_metrics(pinball=1.1, constant=1.0))
    with pytest.raises(PromotionRefused, match="PINBALL_NOT_BELOW_CONSTANT") as e:
        await registry.promote(constant.id, actor="t")
    assert (e.value.metric, e.value.value, e.value.limit) == ("metrics.test.pinball", 1.1, 1.0)
    assert {v.status for v in await registry.list()} == {"staging"}
    assert await registry.history() == []


async def test_status_order_is_enforced(registry: Registry) -> None:
    v = await add(registry)
    with pytest.raises(PromotionRefused, match="SHADOW_REQUIRED"):
        await registry.promote(v.id, "production", actor="t")
    await registry.promote(v.id, "shadow", actor="t")
    with pytest.raises(PromotionRefused, match="ALREADY_IN_STATUS"):
        await registry.promote(v.id, "shadow", actor="t")
    other = await add(registry)
    with pytest.raises(PromotionRefused, match="SHADOW_OCCUPIED") as e:
        await registry.promote(other.id, actor="t")
    assert e.value.value == v.label
    await registry.promote(v.id, actor="t")
    with pytest.raises(PromotionRefused, match="INVALID_TRANSITION"):
        await registry.promote(v.id, actor="t")
    with pytest.raises(PromotionRefused, match="INVALID_TRANSITION"):
        await registry.archive(v.id, actor="t")
    assert (await registry.get(v.id)).status == "production"


async def test_archive_frees_the_shadow_slot(registry: Registry) -> None:
    stuck = await add(registry)
    await registry.promote(stuck.id, actor="t")
    archived = await registry.archive(stuck.id, actor="ops", reason="superseded")
    assert archived.status == "archived"
    nxt = await registry.promote((await add(registry)).id, actor="t")
    assert nxt.status == "shadow"
    last = (await registry.history())[1]
    assert (last.action, last.from_status, last.to_status, last.reason) == (
        "archive", "shadow", "archived", "superseded",
    )


async def test_paired_evaluation_missing_stale_or_worse_is_refused(registry: Registry) -> None:
    prod = await live(registry)
    cases = [
        (entry_metrics(), "PAIRED_EVALUATION_MISSING"),
        (entry_metrics(paired={**paired(prod, 0.7, 0.6), "production_id": "0" * 32}),
         "PAIRED_EVALUATION_STALE"),
        (entry_metrics(paired=paired(prod, 0.60, 0.61)), "PAIRED_AUC_WORSE"),
        (entry_metrics(paired={**paired(prod, 0, 0), "comparable": False, "candidate": None,
                               "reason": "FEATURE_SCHEMA_CHANGED"}),
         "PAIRED_EVALUATION_NOT_COMPARABLE"),
    ]
    for metrics, code in cases:
        v = await add(registry, metrics=metrics)
        await registry.promote(v.id, actor="t")  # the floors pass: shadow is fine
        with pytest.raises(PromotionRefused, match=code) as e:
            await registry.promote(v.id, actor="t")
        assert e.value.code == code
        assert (await registry.get(v.id)).status == "shadow"
        await registry.archive(v.id, actor="t")
    assert "re-train or re-evaluate" in str(e.value) or code.endswith("NOT_COMPARABLE")
    assert await registry.production("entry") == prod


async def test_paired_quantile_candidate_must_not_be_worse_than_production(
    registry: Registry,
) -> None:
    prod = await live(registry, await add(registry, "risk", metrics=quantile_metrics()))
    worse = await add(registry, "risk", metrics=quantile_metrics(
        paired=paired(prod, candidate=1.02, prod=1.0, key="pinball")))
    await registry.promote(worse.id, actor="t")
    with pytest.raises(PromotionRefused, match="PAIRED_PINBALL_WORSE") as e:
        await registry.promote(worse.id, actor="t")
    assert e.value.limit == pytest.approx(1.005)
    await registry.archive(worse.id, actor="t")
    within = await add(registry, "risk", metrics=quantile_metrics(
        paired=paired(prod, candidate=1.004, prod=1.0, key="pinball")))
    assert (await live(registry, within)).status == "production"


async def test_promoting_a_second_version_archives_the_first(registry: Registry) -> None:
    v1 = await live(registry)
    v2 = await live(registry, await add(registry, metrics=entry_metrics(
        paired=paired(v1, candidate=0.6, prod=0.603))))  # within the 0.005 tolerance
    assert (await registry.get(v1.id)).status == "archived"
    assert await registry.production("entry") == v2
    rows = await registry.history("entry")
    assert [(p.version, p.action, p.to_status) for p in rows[-2:]] == [
        ("1.0.0", "archive", "archived"),
        ("1.1.0", "promote", "production"),
    ]
    assert rows[-2].reason == "replaced by entry@1.1.0"
    assert rows[-2].gate is None
    assert rows[-1].gate is not None
    assert rows[-1].gate["checks"][-1]["name"] == "paired_auc"
    assert_history_replays(rows, await registry.list())


async def test_rollback_restores_the_previous_production_and_goes_further_back(
    registry: Registry,
) -> None:
    v1 = await live(registry)
    v2 = await live(registry, await add(registry, metrics=entry_metrics(
        paired=paired(v1, 0.62, 0.62))))
    v3 = await live(registry, await add(registry, metrics=entry_metrics(
        paired=paired(v2, 0.62, 0.62))))
    restored = await registry.rollback("entry", actor="ops", reason="bad fills")
    assert restored.id == v2.id
    assert restored.status == "production"
    assert (await registry.get(v3.id)).status == "archived"
    rows = await registry.history("entry")
    assert [(p.version, p.from_status, p.to_status, p.action, p.reason) for p in rows[-2:]] == [
        ("1.2.0", "production", "archived", "rollback", "bad fills"),
        ("1.1.0", "archived", "production", "rollback", "bad fills"),
    ]
    # a second rollback goes to v1, not back to the version just rolled away from
    assert (await registry.rollback("entry", actor="ops")).id == v1.id
    with pytest.raises(RollbackRefused, match="NO_PREVIOUS_PRODUCTION") as e:
        await registry.rollback("entry", actor="ops")
    assert e.value.code == "NO_PREVIOUS_PRODUCTION"
    assert await registry.production("entry") == await registry.get(v1.id)
    assert_history_replays(await registry.history(), await registry.list())


async def test_rollback_with_nothing_before_is_refused_and_changes_nothing(
    registry: Registry,
) -> None:
    with pytest.raises(RollbackRefused, match="NO_PRODUCTION"):
        await registry.rollback("entry", actor="ops")
    v1 = await live(registry)
    before = await registry.history()
    with pytest.raises(RollbackRefused, match="NO_PREVIOUS_PRODUCTION"):
        await registry.rollback("entry", actor="ops")
    assert await registry.history() == before
    assert await registry.production("entry") == v1


async def test_two_candidates_promoted_at_once_end_with_one_production(
    registry: Registry, pg_dsn: str
) -> None:
    """The loser's retry sees the winner: its paired evaluation is now stale."""
    base = await live(registry)
    a = await add(registry, metrics=entry_metrics(paired=paired(base, 0.63, 0.62)))
    b = await add(registry, metrics=entry_metrics(paired=paired(base, 0.64, 0.62)))
    async with Registry.connect(pg_dsn) as other:
        results = await asyncio.gather(
            registry.promote(a.id, "production", actor="one", skip_shadow=True),
            other.promote(b.id, "production", actor="two", skip_shadow=True),
            return_exceptions=True,
        )
    won = [r for r in results if isinstance(r, ModelVersion)]
    lost = [r for r in results if isinstance(r, PromotionRefused)]
    assert (len(won), len(lost)) == (1, 1), results
    assert lost[0].code == "PAIRED_EVALUATION_STALE"
    assert await registry.production("entry") == won[0]
    assert {v.status for v in await registry.list()} == {"production", "archived", "staging"}
    rows = await registry.history("entry")
    assert sum(p.to_status == "production" for p in rows) == 2  # base, then the winner
    assert sum(p.action == "archive" for p in rows) == 1  # base, archived exactly once
    assert_history_replays(rows, await registry.list())


async def test_first_production_race_leaves_one_production(
    registry: Registry, pg_dsn: str
) -> None:
    a, b = await add(registry), await add(registry)
    async with Registry.connect(pg_dsn) as other:
        results = await asyncio.gather(
            registry.promote(a.id, "production", actor="one", skip_shadow=True),
            other.promote(b.id, "production", actor="two", skip_shadow=True),
            return_exceptions=True,
        )
    codes = sorted(getattr(r, "code", "ok") for r in results)
    assert codes == ["PAIRED_EVALUATION_MISSING", "ok"], results
    assert len(await registry.list(status="production")) == 1
    assert_history_replays(await registry.history(), await registry.list())


async def test_two_candidates_for_the_shadow_slot_at_once_leave_one_shadow(
    registry: Registry, pg_dsn: str
) -> None:
    a, b = await add(registry), await add(registry)
    async with Registry.connect(pg_dsn) as other:
        results = await asyncio.gather(
            registry.promote(a.id, actor="one"), other.promote(b.id, actor="two"),
            return_exceptions=True,
        )
    assert sorted(getattr(r, "code", "ok") for r in results) == ["SHADOW_OCCUPIED", "ok"], results
    assert len(await registry.list(status="shadow")) == 1
    assert_history_replays(await registry.history(), await registry.list())
