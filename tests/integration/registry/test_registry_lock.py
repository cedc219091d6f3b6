"""The per-family training lock across two registries (two processes' worth of sessions)."""

from __future__ import annotations

import pytest

from decile.registry import Registry, TrainingInProgress


async def test_second_trainer_is_refused_while_held_and_admitted_after(
    registry: Registry, pg_dsn: str
) -> None:
    async with Registry.connect(pg_dsn) as other:
        async with registry.training_lock("entry"):
            with pytest.raises(TrainingInProgress, match="TRAINING_IN_PROGRESS") as err:
                async with other.training_lock("entry"):
                    pytest.fail("two holders of one family's lock")
            assert err.value.code == "TRAINING_IN_PROGRESS"
            assert err.value.family == "entry"
            async with other.training_lock("risk"):  # another family is independent
                pass
        async with other.training_lock("entry"):
            with pytest.raises(TrainingInProgress):
                async with registry.training_lock("entry"):
                    pass


async def test_lock_is_released_when_the_body_raises(registry: Registry, pg_dsn: str) -> None:
    with pytest.raises(RuntimeError, match="fit blew up"):
        async with registry.training_lock("rr"):
            raise RuntimeError("fit blew up")
    async with Registry.connect(pg_dsn) as other, other.training_lock("rr"):
        pass
