"""A one-service fleet for ``decile up --fleet fake_registry:FLEET`` in tests.

The port comes from ``FAKE_FLEET_PORT`` (tests pick a free one); the fake
needs Redis so ``decile up`` has an embedded server to start and stop.
"""

from __future__ import annotations

import os

from decile.fleet import ServiceSpec

FLEET: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        "fake",
        "fake_service",
        int(os.environ.get("FAKE_FLEET_PORT", "19999")),
        frozenset({"redis"}),
    ),
)

# A fleet none of whose services is installed.
GHOSTS: tuple[ServiceSpec, ...] = (ServiceSpec("ghost", "fake_service_not_installed", 19998),)
