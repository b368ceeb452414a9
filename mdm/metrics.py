"""Prometheus metrics of the MDM receiver (served on GRIDGATE_MDM_METRICS_PORT). Labels name tenants,
outcomes and reason codes, never gateways or meters."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class MdmMetrics:
    """One set per receiver; a private registry so tests can run several receivers in one process."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.deliveries = Counter(
            "gridgate_mdm_deliveries_total",
            "Deliveries answered, by outcome (stored, duplicate, conflict, refused, unavailable, failed) and "
            "refusal reason", ["tenant", "outcome", "reason"], registry=r)
        self.values = Counter("gridgate_mdm_values_stored_total", "Meter values stored", ["tenant"], registry=r)
        self.delivery_seconds = Histogram(
            "gridgate_mdm_delivery_seconds", "From the last byte of a delivery to its answer (stored first)",
            ["tenant"], registry=r, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.batch_size = Histogram("gridgate_mdm_batch_size", "Deliveries stored in one transaction", ["tenant"],
                                    registry=r, buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
        self.commit_seconds = Histogram(
            "gridgate_mdm_commit_seconds", "One batch: checks, inserts and commit", ["tenant"], registry=r,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.batch_failures = Counter("gridgate_mdm_batch_failures_total", "Batches whose transaction failed",
                                      ["tenant", "error"], registry=r)
        self.queued = Gauge("gridgate_mdm_queued_deliveries", "Deliveries waiting for their batch", ["tenant"],
                            registry=r)
        self.connections = Gauge("gridgate_mdm_connections", "Open connections", registry=r)
        self.handshake_failures = Counter("gridgate_mdm_handshake_failures_total", "Failed TLS handshakes",
                                          ["reason"], registry=r)
        self.refused_connections = Counter(
            "gridgate_mdm_connections_refused_total", "Connections closed after the handshake (client certificate)",
            ["tenant", "reason"], registry=r)
        self.identities = Gauge("gridgate_mdm_identities", "EMT identities served", ["tenant"], registry=r)
