"""Standard Prometheus series every service exports, plus a helper for its own.

Labels carry the subscription pattern (``md.bars.>``), never a concrete
per-symbol subject, so cardinality stays bounded at 1,200 symbols.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)

MESSAGES_IN = Counter(
    "decile_messages_in_total", "Messages received", ["service", "subject"], registry=REGISTRY
)
MESSAGES_OUT = Counter(
    "decile_messages_out_total", "Events published", ["service", "subject"], registry=REGISTRY
)
HANDLER_SECONDS = Histogram(
    "decile_handler_seconds",
    "Handler wall time per message",
    ["service", "subject"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
ERRORS = Counter(
    "decile_errors_total", "Handler errors by kind", ["service", "kind"], registry=REGISTRY
)
DEAD_LETTERS = Counter(
    "decile_dead_letters_total", "Messages sent to dlq.<service>", ["service", "code"],
    registry=REGISTRY,
)
REDELIVERIES = Counter(
    "decile_redeliveries_total", "JetStream redeliveries seen", ["service", "subject"],
    registry=REGISTRY,
)
DUPLICATES = Counter(
    "decile_duplicates_dropped_total", "Events dropped as already seen (by id)",
    ["service", "subject"], registry=REGISTRY,
)
CONSUMER_PENDING = Gauge(
    "decile_consumer_pending", "Stream messages matching the consumer not yet delivered",
    ["service", "stream", "consumer"], registry=REGISTRY,
)
CONSUMER_ACK_PENDING = Gauge(
    "decile_consumer_ack_pending", "Delivered, not yet acked", ["service", "stream", "consumer"],
    registry=REGISTRY,
)
READY = Gauge("decile_ready", "1 when the service is ready", ["service"], registry=REGISTRY)
INFO = Gauge(
    "decile_service_info", "Build and settings facts", ["service", "version"], registry=REGISTRY
)


def counter(name: str, doc: str, labels: list[str]) -> Counter:
    """A service's own counter on the shared registry (``decile_<service>_...``)."""
    return Counter(name, doc, labels, registry=REGISTRY)


def gauge(name: str, doc: str, labels: list[str]) -> Gauge:
    return Gauge(name, doc, labels, registry=REGISTRY)


def histogram(
    name: str, doc: str, labels: list[str], buckets: tuple[float, ...] = LATENCY_BUCKETS
) -> Histogram:
    return Histogram(name, doc, labels, buckets=buckets, registry=REGISTRY)
