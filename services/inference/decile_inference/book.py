"""The model book: which versions this process scores with, swapped whole between cycles.

A cycle reads :attr:`ModelBook.production` once and scores everything with
that :class:`~decile.serving.ModelSet`; a swap builds a new set and replaces
the reference in one assignment, so a cycle is never scored by two versions
and no cycle waits for a load. Versions come from two paths that converge:
``model.activated`` events (fast) and a periodic re-read of the registry
(catches anything published while this process was down or disconnected).
Every version is validated again on load (sha256, input schema, golden
pairs, finite outputs); one that fails keeps the previous version serving.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal

from decile import obs
from decile.registry import ArtifactStore, ModelVersion, Registry, RegistryError
from decile.serving import (
    SERVED_FAMILIES,
    SERVING_FEATURES,
    LoadedModel,
    ModelRefused,
    ModelSet,
    load_version,
)
from decile_inference import metrics

log = obs.get_logger(__name__)
Status = Literal["production", "shadow"]


@dataclass
class ModelBook:
    registry: Registry
    store: ArtifactStore
    production: ModelSet | None = None
    shadow: dict[str, LoadedModel] = field(default_factory=dict)
    heads: dict[str, LoadedModel] = field(default_factory=dict)  # production, by family
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def serving_id(self, family: str, status: Status) -> str | None:
        model = self.heads.get(family) if status == "production" else self.shadow.get(family)
        return str(model.id) if model else None

    async def reconcile(self) -> None:
        """Bring every family in line with the registry's production and shadow."""
        for family in SERVED_FAMILIES:
            await self.apply(family, "production", await self.registry.production(family))
            await self.apply(family, "shadow", await self.registry.shadow(family))

    async def activate(self, family: str, status: Status, version: str, sha256: str) -> None:
        """A ``model.activated`` event: load that version unless it already serves.

        Families inference does not serve (confirm: the confirm service's) are not its."""
        if family not in SERVED_FAMILIES:
            return
        try:
            found = await self.registry.get(f"{family}@{version}")
        except RegistryError as err:
            log.warning("activated version not in the registry", family=family, error=str(err))
            return
        if found.sha256 != sha256:
            log.warning("activation sha256 differs from the registry's; ignored",
                        family=family, version=version)
            return
        await self.apply(family, status, found)

    async def apply(self, family: str, status: Status, version: ModelVersion | None) -> None:
        async with self._lock:
            if version is None:
                if status == "shadow" and self.shadow.pop(family, None) is not None:
                    metrics.SERVING.labels(family, status, "-").set(0)
                return  # production is never unloaded for lack of a replacement
            if self.serving_id(family, status) == str(version.id):
                return
            try:
                loaded = await load_version(version, self.store, SERVING_FEATURES)
                if status == "production":
                    self._swap_production(loaded)
                else:
                    self.shadow[family] = loaded
            except ModelRefused as err:
                metrics.REFUSED.labels(family, err.code).inc()
                log.warning("model refused; the previous version keeps serving",
                            model=version.label, code=err.code, error=str(err))
                return
            metrics.SWAPS.labels(family, status).inc()
            metrics.SERVING.labels(family, status, version.version).set(1)
            log.info("model swapped in", model=version.label, status=status)

    def _swap_production(self, loaded: LoadedModel) -> None:
        heads = {**self.heads, loaded.family: loaded}
        entry = heads.get("entry")
        if entry is not None:
            # raises ModelRefused when the heads disagree on the input: nothing changes then
            models = ModelSet(entry, heads.get("risk"), heads.get("rr"), heads.get("offset"))
            self.production = models  # the one assignment a cycle can observe
        old = self.heads.get(loaded.family)
        if old is not None:
            metrics.SERVING.labels(loaded.family, "production", old.version).set(0)
        self.heads = heads
        shadow = self.shadow.get(loaded.family)
        if shadow is not None and shadow.id == loaded.id:  # promoted from shadow
            del self.shadow[loaded.family]
