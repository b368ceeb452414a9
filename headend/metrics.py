"""Prometheus metrics of the head-end process (served on GRIDGATE_HEADEND_METRICS_PORT), and
:func:`protocol_violation`, the report that is both a count and a log line."""

from __future__ import annotations

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

log = structlog.get_logger("headend.metrics")


class HeadendMetrics:
    """One set per process; a private registry so tests can build several nodes in one process."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.connections = Gauge("gridgate_headend_connections", "Open management connections",
                                 ["tenant"], registry=r)
        self.admissions = Counter("gridgate_headend_admissions_total", "Connection admissions by outcome",
                                  ["tenant", "kind", "outcome"], registry=r)
        self.handshake_failures = Counter("gridgate_headend_handshake_failures_total", "Failed TLS handshakes",
                                          ["reason"], registry=r)
        self.violations = Counter("gridgate_headend_protocol_violations_total", "Protocol violations",
                                  ["tenant", "reason"], registry=r)
        self.wakeups = Counter("gridgate_headend_wakeups_total", "Wake-up packets sent", ["tenant", "outcome"],
                               registry=r)
        self.commands = Counter("gridgate_headend_commands_total", "Gateway commands by outcome",
                                ["tenant", "command", "outcome"], registry=r)
        self.command_seconds = Histogram("gridgate_headend_command_seconds", "Gateway command duration",
                                         ["command"], registry=r,
                                         buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
        self.notifies = Counter("gridgate_headend_notifies_total", "Notifies received", ["tenant", "outcome"],
                                registry=r)
        self.events = Counter("gridgate_headend_events_total", "Gateway events received", ["tenant", "code"],
                              registry=r)
        self.throttle_limit = Gauge("gridgate_headend_throttle_limit",
                                    "Configured limits (sessions: concurrent; wakeups: per second)",
                                    ["scope", "kind"], registry=r)
        self.throttle_in_use = Gauge("gridgate_headend_throttle_sessions_in_use", "Sessions held",
                                     ["scope", "key"], registry=r)
        self.throttle_waiting = Gauge("gridgate_headend_throttle_waiting", "Requests waiting for a slot",
                                      ["scope", "kind"], registry=r)


def protocol_violation(metrics: HeadendMetrics, tenant: str | None, gateway_id: str | None, peer: str, reason: str,
                       detail: str) -> None:
    """Count and log a gateway breaking the protocol (docs/protocol.md section 9)."""
    metrics.violations.labels(tenant=tenant or "-", reason=reason).inc()
    log.warning("headend.protocol_violation", tenant=tenant, gateway=gateway_id, peer=peer, reason=reason,
                detail=detail[:300])
