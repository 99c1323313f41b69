"""The ``/metrics`` document: every sipedge metric family from one :class:`MetricsSnapshot`.

Metric names (all prefixed ``sipedge_``): ``sip_requests_total`` and ``sip_responses_total``
by direction and method/code, ``messages_dropped_total`` by reason, ``transactions``,
``dialogs`` by state and ``dialog_events_total``, ``registrations`` and ``registered_aors``,
``connections`` by transport, ``bans`` by reason and ``ban_events_total``, ``rtpengine_*`` per
node (health, commands, round-trip histogram), ``event_loop_lag_seconds``, ``capture_*``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .metrics import Exposition, Histogram, Traffic
from .monitor import Monitor
from .schemas import RelayNode

__all__ = ["SECURITY_DROPS", "MetricsSnapshot", "merged_drops", "render"]

#: Security counters that count requests dropped or refused, and their reason label.
SECURITY_DROPS = {
    "security.banned_drop": "banned",
    "security.flood": "flood",
    "rules.drop": "rule_drop",
    "rules.ban": "rule_ban",
    "rules.reject": "rule_reject",
}


def merged_drops(drops: Mapping[str, int], security: Mapping[str, int]) -> dict[str, int]:
    """The engine's drops by reason plus the security counters that count drops."""
    out = dict(drops)
    for key, reason in SECURITY_DROPS.items():
        if security.get(key):
            out[reason] = out.get(reason, 0) + security[key]
    return out


@dataclass(slots=True)
class MetricsSnapshot:
    """What the exposition is made of (plain values, so it can be built in tests)."""

    traffic: Traffic
    monitor: Monitor | None = None
    uptime: float = 0.0
    transactions: int = 0
    dialogs: Mapping[str, int] = field(default_factory=dict)  # live dialogs by state
    dialog_events: Mapping[str, int] = field(default_factory=dict)  # started, ended...
    registrations: int = 0
    aors: int = 0
    connections: Mapping[str, int] = field(default_factory=dict)
    bans: Mapping[str, int] = field(default_factory=dict)  # active bans by reason
    ban_events: Mapping[str, int] = field(default_factory=dict)  # added, removed...
    security: Mapping[str, int] = field(default_factory=dict)  # Security.counters()
    relay: list[RelayNode] = field(default_factory=list)
    capture_messages: int = 0
    capture_bytes: int = 0


def _by(label: str, values: Mapping[str, int]) -> list[tuple[dict[str, str], float]]:
    return [({label: k}, v) for k, v in sorted(values.items())]


def render(s: MetricsSnapshot) -> str:
    """The Prometheus text exposition of ``s``."""
    out = Exposition()
    out.gauge("sipedge_uptime_seconds", "Seconds since sipedge started.", [({}, s.uptime)])
    _traffic(out, s.traffic, s.security)
    out.gauge("sipedge_transactions", "Live SIP transactions.", [({}, s.transactions)])
    out.gauge("sipedge_dialogs", "Live dialogs by state.", _by("state", s.dialogs))
    out.counter(
        "sipedge_dialog_events_total",
        "Dialogs started, confirmed, ended, expired.",
        _by("event", s.dialog_events),
    )
    out.gauge("sipedge_registrations", "Registered contacts.", [({}, s.registrations)])
    out.gauge("sipedge_registered_aors", "AORs with a binding.", [({}, s.aors)])
    out.gauge(
        "sipedge_connections",
        "Open stream connections by transport.",
        _by("transport", s.connections),
    )
    out.gauge("sipedge_bans", "Active bans by reason.", _by("reason", s.bans))
    out.counter(
        "sipedge_ban_events_total", "Bans added, extended, removed.", _by("event", s.ban_events)
    )
    _relay(out, s.relay, s.monitor)
    if s.monitor is not None:
        out.histogram(
            "sipedge_event_loop_lag_seconds",
            "Overshoot of the monitor's periodic wake-up (time the loop was busy).",
            [({}, s.monitor.lag)],
        )
    out.gauge(
        "sipedge_capture_messages", "Messages in the capture ring.", [({}, s.capture_messages)]
    )
    out.gauge("sipedge_capture_bytes", "Bytes in the capture ring.", [({}, s.capture_bytes)])
    return out.text()


def _traffic(out: Exposition, traffic: Traffic, security: Mapping[str, int]) -> None:
    req: list[tuple[dict[str, str], float]] = []
    resp: list[tuple[dict[str, str], float]] = []
    for (inbound, is_response, token), n in sorted(traffic.counts.items()):
        direction = "in" if inbound else "out"
        name = token.decode("ascii", "replace")
        if is_response:
            resp.append(({"direction": direction, "code": name}, n))
        else:
            req.append(({"direction": direction, "method": name}, n))
    out.counter("sipedge_sip_requests_total", "SIP requests by direction and method.", req)
    out.counter("sipedge_sip_responses_total", "SIP responses by direction and code.", resp)
    drops = merged_drops(traffic.drops, security)
    out.counter(
        "sipedge_messages_dropped_total", "Messages dropped by reason.", _by("reason", drops)
    )


def _relay(out: Exposition, nodes: list[RelayNode], monitor: Monitor | None) -> None:
    def each(attr: str) -> list[tuple[dict[str, str], float]]:
        return [({"node": n.label}, float(getattr(n, attr))) for n in nodes]

    out.gauge("sipedge_rtpengine_up", "1 when the rtpengine node takes calls.", each("available"))
    out.gauge("sipedge_rtpengine_pending", "ng commands waiting for a reply.", each("pending"))
    for attr, text in (
        ("commands", "ng commands sent."),
        ("timeouts", "ng commands that timed out."),
        ("failures", "Failures counted by the node's health."),
        ("retransmits", "ng commands resent over UDP."),
    ):
        out.counter(f"sipedge_rtpengine_{attr}_total", text, each(attr))
    hists: list[tuple[dict[str, str], Histogram]] = []
    if monitor is not None:
        hists = [({"node": k}, h) for k, h in sorted(monitor.rtt_hist.items())]
    out.histogram("sipedge_rtpengine_rtt_seconds", "ng ping round-trip time per node.", hists)
