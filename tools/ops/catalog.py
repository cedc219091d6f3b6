"""What operations needs to know about each service, beside the fleet registry.

:data:`decile.fleet.FLEET` names every service, its module, HTTP port and
servers. This table adds the rest, one :class:`Ops` entry per service: the
subjects it may publish and consume (the NATS permissions in
``deploy/nats/nats.conf`` and the k8s NATS values are generated from it) and
how it scales on Kubernetes. Adding a service is its ``FLEET`` line plus one
entry here; ``tests/ops`` fail, naming what is missing, until both exist and
the generated files are regenerated (``python -m tools.ops.generate``).

Subjects are written without a namespace: permissions assume the production
layout (``DECILE_NATS__NAMESPACE`` empty). ``dlq.<service>`` is implied.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from decile.fleet import FLEET, ServiceSpec
from decile.subjects import STREAMS

ROOT = Path(__file__).resolve().parents[2]
Scaling = Literal["single", "hpa"]
FAMILY_STREAM = {family: stream for stream, family in STREAMS.items()}


@dataclass(frozen=True)
class Ops:
    """One service's operational contract.

    ``publishes``: subject patterns it may publish (``dlq.<name>`` is added).
    ``consumes``: subject patterns it reads through durable JetStream consumers;
    each pattern's family names the stream (``md.bars.>`` -> MD).
    ``reads_last``: streams it reads single messages from (``get_last_msg``).
    ``kv``: JetStream KV buckets it reads, watches and writes (kill switches).
    ``replays``: ``STREAM.durable`` consumers it deletes at start to replay the stream.
    ``scaling``: ``hpa`` only for services whose replicas can share their
    durable consumers without shared in-memory state.
    """

    publishes: tuple[str, ...] = ()
    consumes: tuple[str, ...] = ()
    reads_last: tuple[str, ...] = ()
    kv: tuple[str, ...] = ()
    replays: tuple[str, ...] = ()
    scaling: Scaling = "single"

    def streams_consumed(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(FAMILY_STREAM[p.split(".")[0]] for p in self.consumes))


OPS: dict[str, Ops] = {
    # one writer of md.*: two replicas would assemble the same cycles twice
    "ingest": Ops(publishes=("md.>",), reads_last=("MD",)),
    # rolling windows per symbol; scales by symbol partitions, not replicas
    "feature": Ops(publishes=("feat.>",), consumes=("md.>",)),
    "inference": Ops(
        publishes=("ml.candidate.>", "ml.cycle.>", "model.retrain.>"),
        consumes=("feat.>", "model.activated.>"),
        scaling="hpa",
    ),
    # open windows live in PostgreSQL; the bar history is replayed from MD at start
    "confirm": Ops(publishes=("ml.confirmed.>", "ml.vetoed.>"),
                   consumes=("ml.candidate.>", "md.bars.>", "model.activated.>"),
                   replays=("MD.confirm-bars-5m", "SIG.confirm-candidates")),
    # kill switches are read from the KV bucket (decile.killswitch), not a consumer
    "risk": Ops(
        publishes=("risk.approved.>", "risk.rejected.>", "model.retrain.>"),
        consumes=("ml.confirmed.>", "md.bars.>", "exec.>", "model.activated.>"),
        kv=("decile-kill",),
        # the book is rebuilt at start
        replays=("EXEC.risk-exec", "MODEL.risk-model-activated", "MD.risk-bars-5m",
                 "SIG.risk-confirmed"),
    ),
    # the only publisher of exec.*; its broker state is a PostgreSQL snapshot
    "execution": Ops(publishes=("exec.>",), consumes=("risk.approved.>", "md.bars.>"),
                     kv=("decile-kill",), reads_last=("EXEC",),
                     # durables recreated after their ack floor at start
                     replays=("RISK.execution-approved", "MD.execution-bars-5m")),
    "model-watcher": Ops(publishes=("model.activated.>", "model.rejected.>")),
    # reads every stream, writes only its own dead letters; idempotent on event id
    "recorder": Ops(consumes=tuple(f"{f}.>" for f in STREAMS.values()), scaling="hpa"),
}


def implemented(fleet: tuple[ServiceSpec, ...] = FLEET) -> tuple[ServiceSpec, ...]:
    """Fleet services whose package exists in this repository (``services/<name>/``).

    Deploy files cover these only: a scrape target or a Deployment for a
    service that does not exist yet would be a permanent false alarm.
    """
    return tuple(s for s in fleet if (ROOT / "services" / s.name / "pyproject.toml").is_file())


def ops_for(name: str) -> Ops:
    try:
        return OPS[name]
    except KeyError:
        raise KeyError(
            f"service {name!r} has no entry in tools/ops/catalog.py OPS; add one"
        ) from None


def env_key(name: str) -> str:
    """``model-watcher`` -> ``MODEL_WATCHER`` (environment variable suffix)."""
    return name.upper().replace("-", "_")


def write_or_check(files: dict[Path, str], check: bool) -> list[Path]:
    """Write generated files, or with ``check`` return those that differ on disk."""
    stale = []
    for path, text in files.items():
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        stale.append(path)
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    return stale
