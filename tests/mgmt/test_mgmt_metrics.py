"""Traffic counters, histograms and the exposition text, read back with prometheus-client."""

from __future__ import annotations

import math

from prometheus_client.parser import text_string_to_metric_families

from sipedge.mgmt.capture import Capture
from sipedge.mgmt.collect import MetricsSnapshot, render
from sipedge.mgmt.metrics import Exposition, Histogram, Traffic
from sipedge.mgmt.monitor import Monitor
from sipedge.mgmt.schemas import RelayNode
from sipedge.transport.base import Flow

FLOW = Flow("udp", ("127.0.0.1", 5060), ("192.0.2.1", 5080))


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text)[(name, frozenset(labels.items()))]


def test_traffic_counts_by_method_and_status_and_feeds_the_capture() -> None:
    cap = Capture(10, 10_000)
    t = Traffic(cap)
    t.message(True, b"INVITE sip:b@x SIP/2.0\r\n\r\n", FLOW)
    t.message(True, b"INVITE sip:b@x SIP/2.0\r\n\r\n", FLOW)
    t.message(False, b"SIP/2.0 180 Ringing\r\n\r\n", FLOW)
    t.message(False, b"SIP/2.0 200 OK\r\n\r\n", FLOW)
    t.dropped("banned")
    assert t.totals(True, False) == {"INVITE": 2}
    assert t.totals(False, True) == {"180": 1, "200": 1}
    assert t.totals(False, False) == {} and t.drops == {"banned": 1}
    assert len(cap) == 4


def test_made_up_methods_and_codes_cannot_grow_the_label_set() -> None:
    t = Traffic()
    for i in range(500):
        t.message(True, f"X{chr(65 + i % 26) * (1 + i // 26)} sip:x SIP/2.0\r\n\r\n".encode(), FLOW)
        t.message(True, f"SIP/2.0 {i:03d} Odd\r\n\r\n".encode(), FLOW)
    t.message(True, b"\x00\x01garbage", FLOW)
    t.message(True, b"lowercase sip:x SIP/2.0\r\n\r\n", FLOW)
    t.message(True, b"BYE sip:x SIP/2.0\r\n\r\n", FLOW)  # known methods always count
    requests = t.totals(True, False)
    assert len(requests) <= 32 + 2 and requests["BYE"] == 1 and requests["other"] > 400
    codes = t.totals(True, True)
    assert "099" not in codes and "100" in codes and codes["other"] == 100
    assert sum(requests.values()) == 503


def test_histogram_is_cumulative_with_inf_last() -> None:
    h = Histogram([0.1, 0.01, 1.0])
    for v in (0.005, 0.05, 0.05, 5.0):
        h.observe(v)
    assert h.cumulative() == [(0.01, 1), (0.1, 3), (1.0, 3), (math.inf, 4)]
    assert h.count == 4 and math.isclose(h.sum, 5.105)


def test_exposition_escapes_labels_and_help() -> None:
    out = Exposition()
    out.counter("x_total", "help with \\ and\nnewline", [({"l": 'a"b\\c\nd'}, 3)])
    out.gauge("g", "a gauge", [({}, 1.5), ({"k": "v"}, float("nan"))])
    text = out.text()
    assert value(text, "x_total", l='a"b\\c\nd') == 3
    assert value(text, "g") == 1.5
    assert math.isnan(value(text, "g", k="v"))


def test_render_is_parsed_by_prometheus_client() -> None:
    t = Traffic()
    t.message(True, b"INVITE sip:b@x SIP/2.0\r\n\r\n", FLOW)
    t.message(False, b"SIP/2.0 486 Busy Here\r\n\r\n", FLOW)
    t.dropped("parse_error")
    mon = Monitor(lambda: (1, 7))
    mon.lag.observe(0.002)
    snap = MetricsSnapshot(
        traffic=t,
        monitor=mon,
        uptime=12.0,
        transactions=3,
        dialogs={"confirmed": 1, "early": 0},
        dialog_events={"started": 7},
        registrations=4,
        aors=2,
        connections={"tcp": 2, "wss": 1},
        bans={"flood": 1},
        ban_events={"added": 1},
        security={"security.flood": 5, "rules.drop": 2},
        relay=[
            RelayNode(
                label="udp:127.0.0.1:22222",
                weight=1,
                available=True,
                pending=0,
                commands=9,
                timeouts=1,
                failures=0,
                retransmits=2,
                rtt_ms=0.4,
            )
        ],
        capture_messages=5,
        capture_bytes=900,
    )
    mon.rtt_hist["udp:127.0.0.1:22222"] = Histogram([0.001])
    mon.rtt_hist["udp:127.0.0.1:22222"].observe(0.0004)
    text = render(snap)
    assert value(text, "sipedge_sip_requests_total", direction="in", method="INVITE") == 1
    assert value(text, "sipedge_sip_responses_total", direction="out", code="486") == 1
    assert value(text, "sipedge_messages_dropped_total", reason="parse_error") == 1
    assert value(text, "sipedge_messages_dropped_total", reason="flood") == 5
    assert value(text, "sipedge_messages_dropped_total", reason="rule_drop") == 2
    assert value(text, "sipedge_transactions") == 3
    assert value(text, "sipedge_dialogs", state="confirmed") == 1
    assert value(text, "sipedge_dialog_events_total", event="started") == 7
    assert value(text, "sipedge_registrations") == 4
    assert value(text, "sipedge_connections", transport="wss") == 1
    assert value(text, "sipedge_bans", reason="flood") == 1
    assert value(text, "sipedge_rtpengine_up", node="udp:127.0.0.1:22222") == 1
    assert value(text, "sipedge_rtpengine_commands_total", node="udp:127.0.0.1:22222") == 9
    assert value(text, "sipedge_rtpengine_rtt_seconds_count", node="udp:127.0.0.1:22222") == 1
    assert value(text, "sipedge_event_loop_lag_seconds_bucket", le="0.0025") == 1
    assert value(text, "sipedge_event_loop_lag_seconds_count") == 1
    assert value(text, "sipedge_capture_bytes") == 900
