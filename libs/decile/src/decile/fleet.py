"""The fleet registry: every long-running service, in start order.

Adding a service is one :class:`ServiceSpec` line in :data:`FLEET`. A service
runs as ``python -m <module>``; one whose package is not installed in this
environment is skipped rather than failing the whole fleet, so the fleet can
grow one service at a time.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Literal

Need = Literal["nats", "postgres", "redis"]
NEEDS: frozenset[str] = frozenset({"nats", "postgres", "redis"})


@dataclass(frozen=True)
class ServiceSpec:
    """One service: its name (also ``DECILE_SERVICE``), module, HTTP port and servers."""

    name: str
    module: str
    http_port: int
    needs: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        unknown = self.needs - NEEDS
        if unknown:
            raise ValueError(f"{self.name}: unknown needs {sorted(unknown)}; known {sorted(NEEDS)}")
        if not 0 < self.http_port < 65536:
            raise ValueError(f"{self.name}: http_port {self.http_port} out of range")


def module_for(name: str) -> str:
    """``model-watcher`` -> ``decile_model_watcher``: the naming rule for service packages."""
    return "decile_" + name.replace("-", "_")


def _spec(name: str, port: int, *needs: str) -> ServiceSpec:
    return ServiceSpec(name, module_for(name), port, frozenset(needs))


FLEET: tuple[ServiceSpec, ...] = (
    _spec("ingest", 9101, "nats"),
    _spec("feature", 9102, "nats", "redis"),
    _spec("inference", 9103, "nats", "postgres"),
    _spec("confirm", 9104, "nats", "postgres"),
    _spec("risk", 9105, "nats", "postgres"),
    _spec("execution", 9106, "nats", "postgres"),
    _spec("model-watcher", 9107, "nats", "postgres"),
    _spec("recorder", 9108, "nats", "postgres"),
)


def installed(spec: ServiceSpec) -> bool:
    """Whether the service's package can be imported here (without importing it)."""
    try:
        return importlib.util.find_spec(spec.module) is not None
    except (ImportError, ValueError):
        return False


def by_name(name: str, fleet: tuple[ServiceSpec, ...] = FLEET) -> ServiceSpec:
    """The spec called ``name``; KeyError lists the known names."""
    for spec in fleet:
        if spec.name == name:
            return spec
    raise KeyError(f"no service {name!r}; known: {', '.join(s.name for s in fleet)}")


def needs_of(fleet: tuple[ServiceSpec, ...]) -> frozenset[str]:
    """Servers the given services need together."""
    return frozenset().union(*(spec.needs for spec in fleet))
