"""compose.yaml: valid against the Compose Specification schema, and consistent with the fleet.

The schema is vendored (deploy/schemas/compose-spec.json, see its README), so
this runs without a network or a Docker engine. Beyond the schema: every
implemented fleet service is there with its registry port, NATS user and the
servers it needs; every NATS user's password variable reaches the server;
published ports listen on loopback only; mounted files exist.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest
import yaml

from tools.ops import gen_nats, gen_prometheus
from tools.ops.catalog import ROOT, implemented

COMPOSE = ROOT / "compose.yaml"
SCHEMA = ROOT / "deploy" / "schemas" / "compose-spec.json"
DEFAULT_RE = re.compile(r"\$\{([A-Z0-9_]+):-([^}]*)\}")
NEED_ENV = {"postgres": "DECILE_POSTGRES__DSN", "redis": "DECILE_REDIS__URL"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def validator() -> jsonschema.protocols.Validator:
    """The schema says draft 2019-09 (as ``http://...#``, which jsonschema does not map)."""
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema)


def test_compose_file_is_valid_against_the_compose_specification(compose: dict[str, Any]) -> None:
    errors = sorted(validator().iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_the_schema_refuses_a_broken_file() -> None:
    broken = {"services": {"x": {"image": "a", "ports": [{"target": "not-a-port"}],
                                 "restartt": "always"}}}
    assert len(list(validator().iter_errors(broken))) >= 2


@pytest.mark.parametrize("spec", implemented(), ids=lambda s: s.name)
def test_every_implemented_service_runs_with_its_settings(
    compose: dict[str, Any], spec: Any
) -> None:
    services = compose["services"]
    assert spec.name in services, f"compose.yaml has no service {spec.name}: add its block"
    svc = services[spec.name]
    env = svc["environment"]
    assert svc["build"]["args"]["SERVICE"] == spec.name
    assert svc["build"]["dockerfile"] == "deploy/docker/Dockerfile"
    assert env["DECILE_SERVICE"] == spec.name
    assert int(env["DECILE_OBS__HTTP_PORT"]) == spec.http_port
    assert svc["ports"] == [f"127.0.0.1:{spec.http_port}:{spec.http_port}"]
    assert env["DECILE_NATS__URL"] == "nats://nats:4222"
    assert env["DECILE_NATS__USER"] == spec.name
    var = gen_nats.password_var(spec.name).name
    assert env["DECILE_NATS__PASSWORD"] == services["nats"]["environment"][var]
    assert svc["depends_on"]["nats"]["condition"] == "service_healthy"
    for need in spec.needs - {"nats"}:
        assert svc["depends_on"][need]["condition"] == "service_healthy", need
        assert NEED_ENV[need] in env, f"{spec.name} needs {need}: set {NEED_ENV[need]}"
    for need in set(NEED_ENV) - spec.needs:
        assert NEED_ENV[need] not in env, f"{spec.name} does not need {need}"
    assert svc["read_only"] is True
    assert svc["cap_drop"] == ["ALL"]


def test_nats_runs_the_generated_config_with_every_password(compose: dict[str, Any]) -> None:
    nats = compose["services"]["nats"]
    assert nats["command"][:2] == ["-c", "/etc/nats/nats.conf"]
    assert "./deploy/nats:/etc/nats:ro" in nats["volumes"]
    want = {gen_nats.password_var(u).name for u in gen_nats.users()}
    assert set(nats["environment"]) == want


def test_a_variable_has_one_default_everywhere() -> None:
    """A password's server side and client side must agree when the variable is unset."""
    defaults: dict[str, set[str]] = {}
    for name, default in DEFAULT_RE.findall(COMPOSE.read_text()):
        defaults.setdefault(name, set()).add(default)
    assert {k: v for k, v in defaults.items() if len(v) > 1} == {}


def test_published_ports_listen_on_loopback_only(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        for port in svc.get("ports", ()):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"


def test_mounted_files_exist_and_prometheus_targets_are_compose_services(
    compose: dict[str, Any]
) -> None:
    for name, svc in compose["services"].items():
        for volume in svc.get("volumes", ()):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
    cfg = yaml.safe_load(gen_prometheus.PATH.read_text())
    for job in cfg["scrape_configs"]:
        for target in job["static_configs"][0]["targets"]:
            host = target.split(":")[0]
            assert host == "localhost" or host in compose["services"], target


def test_the_vendored_schema_is_documented() -> None:
    readme = (SCHEMA.parent / "README.md").read_text()
    assert SCHEMA.name in readme
    assert "Apache" in readme


