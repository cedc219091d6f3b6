"""NATS accounts and per-service permissions, generated from :mod:`tools.ops.catalog`.

Writes ``deploy/nats/nats.conf`` (compose, a single server or your own
cluster) and ``deploy/k8s/nats/values.yaml`` (the official ``nats`` Helm
chart, 3 servers, JetStream). Both carry the same accounts: ``SYS`` (system
account, monitoring), ``DECILE`` (JetStream) with one user per fleet service
plus ``ops`` (operators: nats CLI, kill switches), every password read from
the environment (``NATS_PASSWORD_<USER>``), never written here.

A service user may publish its own subjects and ``dlq.<service>``, call the
JetStream API it needs (stream info/create for provisioning; consumer
info/create/next and acks on the streams it consumes; message get on the
streams it reads back), and receive replies on ``_INBOX.>``. Nothing else:
inference cannot publish ``risk.*`` or ``exec.*``; only execution publishes
``exec.*``; the recorder reads every stream and publishes only ``dlq.recorder``.

Run: ``python -m tools.ops.gen_nats [--check]``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from decile.fleet import FLEET
from tools.ops.catalog import ROOT, Ops, env_key, ops_for, write_or_check

CONF = ROOT / "deploy" / "nats" / "nats.conf"
K8S_VALUES = ROOT / "deploy" / "k8s" / "nats" / "values.yaml"
ACCOUNT = "DECILE"
OPS_USER = "ops"
SYS_USER = "sys"
USER_SECRET = "decile-nats-users"  # k8s Secret: one key per user, the password


@dataclass(frozen=True)
class Var:
    """A value the server reads from its environment (``$NAME`` in nats.conf)."""

    name: str


def password_var(user: str) -> Var:
    return Var(f"NATS_PASSWORD_{env_key(user)}")


def permissions(name: str, ops: Ops) -> dict[str, Any]:
    """The publish/subscribe allow-lists of one service user (deny by omission)."""
    pub = [*ops.publishes, f"dlq.{name}"]
    # every service provisions the streams at start (decile.bus.provision_streams)
    pub += ["$JS.API.STREAM.INFO.*", "$JS.API.STREAM.CREATE.*"]
    for stream in ops.streams_consumed():
        pub += [
            f"$JS.API.CONSUMER.INFO.{stream}.*",
            f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.*",
            f"$JS.API.CONSUMER.CREATE.{stream}.>",
            f"$JS.API.CONSUMER.MSG.NEXT.{stream}.*",
            f"$JS.ACK.{stream}.>",
        ]
    for stream in ops.reads_last:
        pub += [f"$JS.API.STREAM.MSG.GET.{stream}", f"$JS.API.DIRECT.GET.{stream}.>"]
    pub += [f"$JS.API.CONSUMER.DELETE.{durable}" for durable in ops.replays]
    for bucket in ops.kv:  # a KV bucket is the stream KV_<bucket> on subjects $KV.<bucket>.>
        stream = f"KV_{bucket}"
        pub += [
            f"$KV.{bucket}.>",
            f"$JS.API.STREAM.MSG.GET.{stream}",
            f"$JS.API.DIRECT.GET.{stream}.>",
            f"$JS.API.CONSUMER.CREATE.{stream}",
            f"$JS.API.CONSUMER.CREATE.{stream}.>",
            f"$JS.API.CONSUMER.DELETE.{stream}.*",
            f"$JS.API.CONSUMER.INFO.{stream}.*",
            "$JS.FC.>",  # flow-control replies of the ordered consumer a watch uses
        ]
    # replies (publish acks, pulled messages, API answers) arrive on the inbox
    sub = ["_INBOX.>", *ops.consumes]
    return {"publish": {"allow": pub}, "subscribe": {"allow": sub}}


def accounts() -> dict[str, Any]:
    users: list[dict[str, Any]] = [
        {"user": spec.name, "password": password_var(spec.name),
         "permissions": permissions(spec.name, ops_for(spec.name))}
        for spec in FLEET
    ]
    users.append({"user": OPS_USER, "password": password_var(OPS_USER)})
    return {
        "SYS": {"users": [{"user": SYS_USER, "password": password_var(SYS_USER)}]},
        ACCOUNT: {"jetstream": "enabled", "users": users},
    }


def users() -> list[str]:
    return [*(s.name for s in FLEET), OPS_USER, SYS_USER]


# ---- nats.conf -----------------------------------------------------------------


def _conf_value(value: Any, indent: int) -> str:
    pad = "  " * indent
    if isinstance(value, Var):
        return f"${value.name}"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        if all(isinstance(v, str) for v in value):
            flat = "[" + ", ".join(json.dumps(v) for v in value) + "]"
            if len(flat) + 2 * indent < 90:
                return flat
            return "[\n" + "".join(f"{pad}  {json.dumps(v)}\n" for v in value) + pad + "]"
        items = "".join(f"{pad}  {_conf_value(v, indent + 1)}\n" for v in value)
        return "[\n" + items + pad + "]"
    if isinstance(value, dict):
        body = "".join(
            f"{pad}  {k}: {_conf_value(v, indent + 1)}\n" for k, v in value.items()
        )
        return "{\n" + body + pad + "}"
    raise TypeError(f"cannot render {value!r}")


def render_conf() -> str:
    head = """\
# GENERATED by tools/ops/gen_nats.py from tools/ops/catalog.py: do not edit, regenerate
# with `python -m tools.ops.generate`. NATS with JetStream, one user per fleet service.
#
# Passwords are read from the server's environment: $NATS_PASSWORD_<USER>, one per user
# below ($NATS_PASSWORD_MODEL_WATCHER for model-watcher). Plain text or a bcrypt hash
# (`nats server passwd`) both work; compose's defaults are for local development only.
# TLS: run with nats-tls.conf instead. Permissions assume no subject namespace.
# The JetStream store is the -sd flag (compose: -sd /data); flags override ports here.

port: 4222
http_port: 8222
max_payload: 8MB

jetstream: enabled

system_account: SYS
"""
    return head + "\naccounts " + _conf_value(accounts(), 0) + "\n"


# ---- official Helm chart values ------------------------------------------------


def _chart_value(value: Any) -> Any:
    if isinstance(value, Var):
        return f"<< ${value.name} >>"
    if isinstance(value, list):
        return [_chart_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _chart_value(v) for k, v in value.items()}
    return value


def chart_values() -> dict[str, Any]:
    """Values for the ``nats`` subchart (key ``nats:`` of deploy/k8s/nats/Chart.yaml)."""
    env = {
        password_var(u).name: {"valueFrom": {"secretKeyRef": {"name": USER_SECRET, "key": u}}}
        for u in users()
    }
    return {
        "nats": {
            "config": {
                "cluster": {"enabled": True, "replicas": 3},
                "jetstream": {
                    "enabled": True,
                    "fileStore": {"enabled": True, "pvc": {"enabled": True, "size": "20Gi"}},
                    "memoryStore": {"enabled": False},
                },
                "monitor": {"enabled": True},
                "merge": {
                    "max_payload": "<< 8MB >>",
                    "system_account": "SYS",
                    "accounts": _chart_value(accounts()),
                },
            },
            "container": {"env": env},
            "podTemplate": {
                "topologySpreadConstraints": {
                    "kubernetes.io/hostname": {"maxSkew": 1,
                                               "whenUnsatisfiable": "DoNotSchedule"},
                },
            },
            "natsBox": {"enabled": False},
            # NATS and JetStream metrics (consumer pending, stream sizes) for Prometheus
            "promExporter": {"enabled": True},
        }
    }


def render_values() -> str:
    head = (
        "# GENERATED by tools/ops/gen_nats.py from tools/ops/catalog.py: do not edit, "
        "regenerate\n# with `python -m tools.ops.generate`. Values for the official nats chart "
        "(a dependency\n# of Chart.yaml here): 3 servers, JetStream on file storage, the same "
        "accounts and\n# per-service permissions as deploy/nats/nats.conf. Passwords come from "
        f"the Secret\n# {USER_SECRET} (one key per user); see deploy/k8s/README.md.\n"
    )
    return head + yaml.safe_dump(chart_values(), sort_keys=False, width=100)


def render() -> dict[Path, str]:
    return {CONF: render_conf(), K8S_VALUES: render_values()}


def main(argv: list[str]) -> int:
    stale = write_or_check(render(), check="--check" in argv)
    for path in stale:
        print(f"{'stale' if '--check' in argv else 'wrote'}: {path.relative_to(ROOT)}")
    return 1 if stale and "--check" in argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
