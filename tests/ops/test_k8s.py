"""deploy/k8s: rendered manifests are current, valid Kubernetes objects, and wired right.

Helm cannot be installed from the registries here, so the services' manifests
come from a Python renderer (tools/ops/render_k8s.py) and are validated against
the Kubernetes OpenAPI schemas that the PyPI package ``kubernetes-validate``
ships (strict: unknown fields are errors). NATS is the official chart as a
dependency (deploy/k8s/nats); its values are checked for a 3-server JetStream
cluster carrying exactly the accounts of deploy/nats/nats.conf.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tools.ops import gen_nats, render_k8s
from tools.ops.catalog import implemented, ops_for

K8S_VERSIONS = ("1.30.0", "1.33.0")  # oldest and newest minor we claim to support
FILES = [*sorted(render_k8s.OUT.glob("*.yaml")), render_k8s.EXAMPLE_SECRETS]


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def all_docs() -> list[dict[str, Any]]:
    return [d for path in FILES for d in docs(path)]


def find(kind: str, name: str) -> dict[str, Any] | None:
    return next((d for d in all_docs() if d["kind"] == kind and d["metadata"]["name"] == name),
                None)


def test_the_rendered_manifests_are_current() -> None:
    files = render_k8s.render()
    assert sorted(files) == sorted(FILES), "run `python -m tools.ops.generate`"
    for path, text in files.items():
        assert path.read_text() == text, f"{path.name} is stale: run python -m tools.ops.generate"


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_object_is_valid_against_the_kubernetes_schema(path: Path, version: str) -> None:
    for doc in docs(path):
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            pytest.fail(f"{path.name} {doc['kind']}/{doc['metadata']['name']}: {err.message} "
                        f"at {'.'.join(map(str, err.path))}")


def test_the_validator_refuses_a_broken_deployment() -> None:
    deployment = find("Deployment", "decile-ingest")
    assert deployment is not None
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGett"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("spec", implemented(), ids=lambda s: s.name)
def test_each_service_has_probes_settings_and_scaling(spec: Any) -> None:
    name = f"decile-{spec.name}"
    deployment = find("Deployment", name)
    assert deployment is not None, f"no Deployment for {spec.name}"
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["ports"] == [{"name": "http", "containerPort": spec.http_port,
                                   "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    svc = find("Service", name)
    assert svc is not None
    assert svc["spec"]["selector"].items() <= labels.items()
    config = find("ConfigMap", name)
    assert config is not None
    assert config["data"]["DECILE_SERVICE"] == spec.name
    assert config["data"]["DECILE_OBS__HTTP_PORT"] == str(spec.http_port)
    assert config["data"]["DECILE_NATS__USER"] == spec.name
    for ref in container["envFrom"]:
        assert find("ConfigMap", ref["configMapRef"]["name"]) is not None, ref
    hpa = find("HorizontalPodAutoscaler", name)
    if ops_for(spec.name).scaling == "hpa":
        assert hpa is not None
        assert hpa["spec"]["scaleTargetRef"]["name"] == name
        assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
        assert find("PodDisruptionBudget", name) is not None
    else:
        assert hpa is None
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"]["type"] == "Recreate"


def test_every_secret_reference_exists_in_the_example_secrets() -> None:
    secrets = {d["metadata"]["name"]: d["stringData"] for d in docs(render_k8s.EXAMPLE_SECRETS)}
    for doc in all_docs():
        if doc["kind"] != "Deployment":
            continue
        for env in doc["spec"]["template"]["spec"]["containers"][0]["env"]:
            ref = env["valueFrom"]["secretKeyRef"]
            assert ref["key"] in secrets.get(ref["name"], {}), (doc["metadata"]["name"], ref)
    for spec in implemented():
        need_dsn = "postgres" in spec.needs
        deployment = find("Deployment", f"decile-{spec.name}")
        assert deployment is not None
        names = {e["name"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert ("DECILE_POSTGRES__DSN" in names) == need_dsn, spec.name


def test_nats_is_the_official_chart_with_three_jetstream_servers() -> None:
    chart = yaml.safe_load((render_k8s.K8S / "nats" / "Chart.yaml").read_text())
    (dep,) = chart["dependencies"]
    assert dep["name"] == "nats"
    assert dep["repository"].startswith("https://nats-io.github.io/")
    values = yaml.safe_load(gen_nats.K8S_VALUES.read_text())
    assert values == gen_nats.chart_values(), "run `python -m tools.ops.generate`"
    cfg = values["nats"]["config"]
    assert cfg["cluster"] == {"enabled": True, "replicas": 3}
    assert cfg["jetstream"]["enabled"]
    assert cfg["jetstream"]["fileStore"]["pvc"]["enabled"]
    common = find("ConfigMap", "decile-common")
    assert common is not None
    assert common["data"]["DECILE_NATS__STREAM_REPLICAS"] == str(cfg["cluster"]["replicas"])


def test_chart_accounts_match_nats_conf_and_every_password_comes_from_the_secret() -> None:
    values = yaml.safe_load(gen_nats.K8S_VALUES.read_text())["nats"]
    text = yaml.safe_dump(values["config"]["merge"])
    used = set(re.findall(r"<< \$([A-Z0-9_]+) >>", text))
    assert used == {gen_nats.password_var(u).name for u in gen_nats.users()}
    env = values["container"]["env"]
    for var in used:
        assert env[var]["valueFrom"]["secretKeyRef"]["name"] == gen_nats.USER_SECRET
    accounts = values["config"]["merge"]["accounts"]
    conf_users = [u["user"] for u in gen_nats.accounts()["DECILE"]["users"]]
    assert [u["user"] for u in accounts["DECILE"]["users"]] == conf_users
    for chart_user, conf_user in zip(accounts["DECILE"]["users"],
                                     gen_nats.accounts()["DECILE"]["users"], strict=True):
        assert chart_user.get("permissions") == conf_user.get("permissions")
