"""The confirm model in use: the registry's production ``confirm`` version, checked, swapped whole.

A version is loaded with the serving loader (sha256, features and their schema
version, calibration, golden replay) and must also have been trained on this
service's flow (window, its timeframe, baseline, ATR edges:
:func:`decile.confirm.flow_mismatch`): the same six numbers under another
window mean something else. A refused version is logged, counted and never
used; whatever was deciding before keeps deciding. A decision reads
:attr:`ModelSlot.current` once, so a swap falls between decisions.
"""

from __future__ import annotations

import asyncio

from decile.confirm import FLOW_FEATURES, FLOW_SCHEMA_VERSION, ConfirmConfig, flow_mismatch
from decile.events import ModelActivated
from decile.obs import get_logger
from decile.registry import ArtifactStore, ModelVersion, Registry, RegistryError
from decile.serving import LoadedModel, ModelRefused, load_version
from decile_confirm import metrics as m

log = get_logger(__name__)
FAMILY = "confirm"


class ModelSlot:
    def __init__(self, registry: Registry, store: ArtifactStore, config: ConfirmConfig) -> None:
        self.registry = registry
        self.store = store
        self.config = config
        self.current: LoadedModel | None = None
        self.refused: set[str] = set()  # version ids: refused once, not retried every re-read
        self._lock = asyncio.Lock()

    @property
    def version(self) -> str:
        return self.current.version if self.current else ""

    async def reconcile(self) -> None:
        """Load the registry's production version unless it is already deciding."""
        await self.apply(await self.registry.production(FAMILY))

    async def activate(self, event: ModelActivated) -> None:
        """A ``model.activated.confirm``: load that version if the registry agrees."""
        if event.family != FAMILY or event.status != "production":
            return
        try:
            found = await self.registry.get(f"{FAMILY}@{event.version}")
        except RegistryError as err:
            log.warning("activated confirm version not in the registry", version=event.version,
                        error=str(err))
            return
        if found.sha256 != event.sha256:
            log.warning("activation sha256 differs from the registry's; ignored",
                        version=event.version)
            return
        await self.apply(found)

    async def apply(self, version: ModelVersion | None) -> None:
        async with self._lock:
            if version is None:
                return  # production is never unloaded for lack of a replacement
            key = str(version.id)
            if (self.current and str(self.current.id) == key) or key in self.refused:
                return
            mismatch = flow_mismatch(self.config, version.metrics)
            if mismatch is not None:
                self._refuse(version, mismatch.code.value, mismatch.detail)
                return
            try:
                loaded = await load_version(
                    version, self.store, FLOW_FEATURES,
                    expected_schema_version=FLOW_SCHEMA_VERSION, expected_strategies=None,
                )
            except ModelRefused as err:
                self._refuse(version, err.code.value, str(err))
                return
            old, self.current = self.current, loaded  # the one assignment a decision sees
            if old is not None:
                m.MODEL_INFO.labels(old.version).set(0)
            m.MODEL_INFO.labels(loaded.version).set(1)
            m.MODEL_SWAPS.inc()
            log.info("confirm model swapped in", model=loaded.label,
                     previous=old.label if old else None)

    def _refuse(self, version: ModelVersion, code: str, detail: str) -> None:
        self.refused.add(str(version.id))
        m.MODEL_REFUSED.labels(code).inc()
        log.warning("confirm model refused; not used", model=version.label, code=code,
                    detail=detail[:500], deciding=self.version or None)
