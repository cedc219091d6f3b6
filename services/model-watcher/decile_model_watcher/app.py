"""The one bootstrap of the model-watcher."""

from __future__ import annotations

from decile.events import ModelActivated, ModelRejected
from decile.registry import Registry, open_artifacts
from decile.service import Runtime, create_runtime
from decile_model_watcher.activation import Memory
from decile_model_watcher.handlers import Deps
from decile_model_watcher.settings import ModelWatcherSettings
from decile_model_watcher.watch import WatchLoop


def create_app(settings: ModelWatcherSettings) -> Runtime:
    rt = create_runtime(settings)
    rt.ready("registry", False)  # true after the first complete resync
    rt.produces(ModelActivated, "model", "activated",
                "A validated version now serves as production or shadow of its family.")
    rt.produces(ModelRejected, "model", "rejected",
                "A live version that failed validation: serving keeps what it has.")

    async def connect() -> Deps:
        """The registry (migrations applied) and the artifact store, opened once."""
        registry = await Registry.connect(
            settings.postgres.dsn.get_secret_value(), pool_max=settings.postgres.pool_max
        )
        try:
            nc = rt.broker.connection if settings.artifacts.backend == "nats" else None
            store = await open_artifacts(settings.artifacts, nc)
        except BaseException:
            await registry.close()
            raise
        return Deps(registry, store, rt.bus, settings.watcher.families, Memory())

    loop = WatchLoop(connect, settings.watcher, lambda ok: rt.ready("registry", ok))

    @rt.after_start
    async def _watch() -> None:
        rt.spawn(loop.run(), "registry-watch")

    @rt.on_stop
    async def _close() -> None:
        if loop.deps is not None:
            await loop.deps.registry.close()

    return rt
