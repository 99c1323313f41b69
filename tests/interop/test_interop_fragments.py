"""Large ng replies over a path that drops IP fragments (issue 7): UDP-ng stalls, TCP-ng and
WS-ng through the same veth are unaffected, and ``sipedge doctor`` says so.

rtpengine runs in a "relay" namespace, the client in a "client" namespace, joined by a veth
pair with MTU 1500 (see interop_frag). Query and delete replies of an 8-stream call are
~9.5 KB: seven fragments each over UDP.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from interop_frag import (
    HELPER,
    TCP_NODE,
    UDP_NODE,
    WS_NODE,
    NamespacedRtpEngine,
    NamespacePair,
    in_client,
    why_not,
)

pytestmark = pytest.mark.interop
TIMEOUT = "0.6"


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NamespacePair]:
    """The namespaces with rtpengine running in the relay one and answering pings."""
    reason = why_not()
    if reason is not None:
        pytest.skip(reason)
    namespaces = NamespacePair()
    namespaces.create()
    daemon = NamespacedRtpEngine(namespaces, Path(tmp_path_factory.mktemp("frag")))
    try:
        daemon.start()
        ready = in_client(namespaces, str(HELPER), "--wait", "8", "--streams", "1", UDP_NODE)
        assert ready.returncode == 0, ready.stderr + daemon.log.read_text()[-2000:]
        yield namespaces
    finally:
        daemon.stop()
        namespaces.close()


@pytest.fixture
def fragments_dropped(pair: NamespacePair) -> Iterator[NamespacePair]:
    """The client namespace drops every non-first IP fragment while the test runs."""
    pair.drop_fragments(True)
    try:
        yield pair
    finally:
        pair.drop_fragments(False)


def exchange(pair: NamespacePair, *nodes: str) -> dict[str, dict[str, Any]]:
    """ping, offer, query, delete of an 8-stream call on each node, from the client side."""
    done = in_client(pair, str(HELPER), "--timeout", TIMEOUT, *nodes)
    assert done.returncode == 0, done.stderr
    return {r["node"]: r for r in json.loads(done.stdout)}


def doctor(pair: NamespacePair) -> tuple[int, dict[str, dict[str, Any]]]:
    args = ["-m", "sipedge", "doctor", "--node", UDP_NODE, "--try", TCP_NODE, "--try", WS_NODE]
    done = in_client(pair, *args, "--timeout", TIMEOUT, "--samples", "2", "--json")
    assert done.stdout, done.stderr
    return done.returncode, {n["node"]: n for n in json.loads(done.stdout)["nodes"]}


def test_baseline_large_replies_arrive_over_every_transport(pair: NamespacePair) -> None:
    results = exchange(pair, UDP_NODE, TCP_NODE, WS_NODE)
    for node, r in results.items():
        for step in ("ping", "offer", "query", "delete"):
            assert r[step]["ok"], (node, step, r)
        assert r["query"]["bytes"] > 6 * 1500  # fragmented over UDP, and still whole
    assert pair.dropped_fragments() == 0


def test_dropped_fragments_stall_udp_ng_but_not_tcp_or_ws(
    fragments_dropped: NamespacePair,
) -> None:
    before = fragments_dropped.dropped_fragments()
    results = exchange(fragments_dropped, UDP_NODE, TCP_NODE, WS_NODE)
    udp = results[UDP_NODE]
    assert udp["ping"]["ok"] and udp["offer"]["ok"]  # small replies: one datagram each
    assert udp["query"] == {"ok": False, "error": "RelayTimeout"}
    assert udp["delete"] == {"ok": False, "error": "RelayTimeout"}
    for node in (TCP_NODE, WS_NODE):
        r = results[node]
        assert all(r[s]["ok"] for s in ("ping", "offer", "query", "delete")), (node, r)
        assert r["query"]["bytes"] > 6 * 1500
    assert fragments_dropped.dropped_fragments() > before


def test_doctor_is_quiet_on_a_healthy_path(pair: NamespacePair) -> None:
    code, nodes = doctor(pair)
    assert code == 0, nodes
    assert [n["status"] for n in nodes.values()] == ["ok", "ok", "ok"]


def test_doctor_says_large_udp_replies_are_lost_and_names_tcp(
    fragments_dropped: NamespacePair,
) -> None:
    code, nodes = doctor(fragments_dropped)
    assert code == 1
    udp = nodes[UDP_NODE]
    assert udp["status"] == "lost" and udp["small_ms"]["lost"] == 0
    assert udp["advice"] == [TCP_NODE, WS_NODE]
    assert "IP fragments are being dropped on the path" in udp["verdict"]
    assert f"Use {TCP_NODE} (large reply in " in udp["verdict"]
    assert nodes[TCP_NODE]["status"] == nodes[WS_NODE]["status"] == "ok"
