"""``sipedge doctor`` against the real rtpengine, a UDP relay that loses or delays large
replies (what a fragment-dropping or fragment-shaping path does), and the pure verdicts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import pytest
from click.testing import CliRunner
from media_support import HOST, RtpEngineDaemon, free_port, run

from sipedge.cli import main
from sipedge.config import load_config
from sipedge.media.doctor import (
    DoctorReport,
    DoctorSettings,
    Probe,
    classify,
    config_nodes,
    probe_sdp,
    run_doctor,
)
from sipedge.media.ng import parse_node_spec

FAST = DoctorSettings(samples=3, timeout=0.4)


class _Relay(asyncio.DatagramProtocol):
    """Client side of a UDP relay to rtpengine; replies over ``limit`` bytes are dropped
    (``delay`` is None) or held back ``delay`` seconds."""

    def __init__(self, target: int, limit: int, delay: float | None) -> None:
        self.target, self.limit, self.delay = target, limit, delay
        self.transport: asyncio.DatagramTransport | None = None
        self.upstream: asyncio.DatagramTransport | None = None
        self.client: Any = None
        self.dropped = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.client = addr
        assert self.upstream is not None
        self.upstream.sendto(data)

    def reply(self, data: bytes) -> None:
        assert self.transport is not None
        if len(data) <= self.limit:
            self.transport.sendto(data, self.client)
        elif self.delay is None:
            self.dropped += 1
        else:
            loop = asyncio.get_running_loop()
            loop.call_later(self.delay, self.transport.sendto, data, self.client)


class _Upstream(asyncio.DatagramProtocol):
    def __init__(self, relay: _Relay) -> None:
        self.relay = relay

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.relay.reply(data)


@asynccontextmanager
async def lossy_relay(
    daemon: RtpEngineDaemon, limit: int = 1400, delay: float | None = None
) -> AsyncIterator[tuple[str, _Relay]]:
    """A ``udp:`` node in front of the daemon that mistreats replies over ``limit`` bytes."""
    loop = asyncio.get_running_loop()
    relay = _Relay(daemon.ng_udp, limit, delay)
    down, _ = await loop.create_datagram_endpoint(lambda: relay, local_addr=(HOST, 0))
    up, _ = await loop.create_datagram_endpoint(
        lambda: _Upstream(relay), remote_addr=(HOST, daemon.ng_udp)
    )
    relay.upstream = up
    try:
        yield f"udp:{HOST}:{down.get_extra_info('sockname')[1]}", relay
    finally:
        down.close()
        up.close()


def by_node(report: DoctorReport) -> dict[str, Any]:
    return {r.label: r for r in report.nodes}


# -- against the real daemon -------------------------------------------------------------------


def test_healthy_node_over_every_transport(rtpengine: RtpEngineDaemon) -> None:
    nodes = [rtpengine.udp, rtpengine.tcp, rtpengine.ws]
    report = run(run_doctor(nodes, settings=FAST))
    assert [r.label for r in report.nodes] == nodes
    for r in report.nodes:
        assert r.status == "ok", r.verdict
        assert r.verdict.startswith(f"{r.label}: OK: ping ")
        assert len(r.probe.small) == len(r.probe.large) == 3
        assert r.probe.large_bytes is not None and r.probe.large_bytes > 6 * 1500
        assert r.advice == ()
    assert report.ok and report.exit_code == 0
    assert not [c for c in rtpengine.calls() if c.startswith("sipedge-doctor-")]


def test_dead_udp_and_tcp_ports_are_unusable(rtpengine: RtpEngineDaemon) -> None:
    dead_udp, dead_tcp = f"udp:{HOST}:{free_port()}", f"tcp:{HOST}:{free_port()}"
    report = run(run_doctor([dead_udp, dead_tcp, rtpengine.udp], settings=FAST))
    nodes = by_node(report)
    assert nodes[dead_udp].status == "unusable"
    assert "no reply to a ping within 0.4 s" in nodes[dead_udp].verdict
    assert nodes[dead_tcp].status == "unusable"
    assert "cannot connect" in nodes[dead_tcp].verdict
    assert nodes[rtpengine.udp].status == "ok"
    assert not report.ok and report.exit_code == 1


def test_lost_large_replies_name_the_tcp_node(rtpengine: RtpEngineDaemon) -> None:
    async def go() -> tuple[DoctorReport, int, str]:
        async with lossy_relay(rtpengine) as (node, relay):
            alternatives = [rtpengine.tcp, rtpengine.ws, f"tcp:{HOST}:{free_port()}"]
            report = await run_doctor([node], alternatives, FAST)
            return report, relay.dropped, node

    report, dropped, node = run(go())
    udp = by_node(report)[node]
    assert dropped >= 2
    assert udp.status == "lost" and len(udp.probe.small) == 3 and udp.probe.large == ()
    assert udp.advice == (rtpengine.tcp, rtpengine.ws)  # not the dead TCP port
    assert "large replies (~" in udp.verdict and "IP fragments are being dropped" in udp.verdict
    assert f"Use {rtpengine.tcp} (large reply in " in udp.verdict
    assert report.exit_code == 1
    assert [r.role for r in report.nodes] == ["node", "alternative", "alternative", "alternative"]
    # the delete request got through although its reply was lost: no call left behind
    assert not [c for c in rtpengine.calls() if c.startswith("sipedge-doctor-")]


def test_delayed_large_replies_are_slow(rtpengine: RtpEngineDaemon) -> None:
    async def go() -> tuple[DoctorReport, str]:
        async with lossy_relay(rtpengine, delay=0.3) as (node, _):
            settings = DoctorSettings(samples=2, timeout=1.0, slow_after=0.1)
            return await run_doctor([node], settings=settings), node

    report, node = run(go())
    udp = by_node(report)[node]
    assert udp.status == "slow"
    assert min(udp.probe.large) >= 0.3 > max(udp.probe.small)
    assert "slow" in udp.verdict and "delayed" in udp.verdict
    assert "--listen-tcp-ng" in udp.verdict  # no alternative known: the generic advice
    assert report.exit_code == 1


# -- the command line ----------------------------------------------------------------------


def test_cli_json_shape_and_exit_code(rtpengine: RtpEngineDaemon) -> None:
    args = ["doctor", "--node", rtpengine.udp, "--try", rtpengine.tcp, "--timeout", "0.4"]
    result = CliRunner().invoke(main, [*args, "--samples", "2", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["ok"] is True
    assert [n["node"] for n in data["nodes"]] == [rtpengine.udp, rtpengine.tcp]
    first = data["nodes"][0]
    assert set(first) == {
        "node", "transport", "role", "status", "small_ms", "large_ms", "large_bytes",
        "error", "advice", "verdict",
    }  # fmt: skip
    assert (first["transport"], first["role"], first["status"]) == ("udp", "node", "ok")
    assert data["nodes"][1]["role"] == "alternative"
    assert first["small_ms"]["samples"] == 2 and first["small_ms"]["lost"] == 0
    assert 0 < first["small_ms"]["median"] <= first["small_ms"]["max"]
    assert first["large_bytes"] > 1500


def test_cli_reads_config_nodes_and_fails_on_a_dead_one(
    rtpengine: RtpEngineDaemon, tmp_path: Path
) -> None:
    dead = f"tcp:{HOST}:{free_port()}"
    config = tmp_path / "sipedge.toml"
    config.write_text(
        f'[media]\nnodes = ["{rtpengine.udp}=2"]\n'
        f'[[media.sets]]\nname = "b"\nnodes = ["{dead}", "{rtpengine.udp}"]\n'
    )
    result = CliRunner().invoke(main, ["doctor", "-c", str(config), "--timeout", "0.4"])
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"{rtpengine.udp}: OK")
    assert lines[1].startswith(f"{dead}: unusable: cannot connect")
    assert lines[-1] == "sipedge doctor: 1 of 2 node(s) OK"


def test_cli_rejects_a_bad_spec() -> None:
    result = CliRunner().invoke(main, ["doctor", "--node", "sctp:1.2.3.4:5"])
    assert result.exit_code == 2
    assert "bad rtpengine node" in result.output


# -- pure parts ----------------------------------------------------------------------------


def probe(spec: str, small: int = 3, large: int = 3, **kw: Any) -> Probe:
    kw.setdefault("large_bytes", 9490 if large else None)
    return Probe(parse_node_spec(spec), (0.0002,) * small, large=(0.0004,) * large, **kw)


def test_advice_names_only_healthy_tcp_or_ws_nodes_of_the_same_host() -> None:
    udp = probe("udp:10.0.0.5:22222", large=0, large_failed=2)
    others = [
        probe("tcp:10.0.0.5:22223"),
        probe("ws://10.0.0.5:8080/ng"),
        probe("tcp:10.0.0.6:22223"),  # another host
        probe("udp:10.0.0.5:22224"),  # UDP again
        probe("ws://10.0.0.5:8081/", large=0, large_failed=2),  # broken itself
    ]
    report = classify(udp, others, DoctorSettings())
    assert report.status == "lost"
    assert report.advice == ("tcp:10.0.0.5:22223", "ws://10.0.0.5:8080/ng")
    assert report.verdict == (
        "udp:10.0.0.5:22222: large replies (~9.5 KB) lost: 2 of 2 unanswered within 1 s,"
        " while pings answer in 0.20 ms: IP fragments are being dropped on the path."
        " Use tcp:10.0.0.5:22223 (large reply in 0.40 ms) or ws://10.0.0.5:8080/ng"
        " (large reply in 0.40 ms) instead."
    )


def test_status_of_each_kind_of_trouble() -> None:
    settings = DoctorSettings(slow_after=0.1)
    some_lost = probe("udp:h:1", large=2, large_failed=1)
    pings_lost = probe("tcp:h:1", small_failed=1)
    slow = Probe(parse_node_spec("tcp:h:1"), (0.001,), large=(0.3, 0.2), large_bytes=9000)
    dead = Probe(parse_node_spec("tcp:h:1"), error="cannot connect (refused)")
    assert classify(some_lost, [], settings).status == "lossy"
    assert "1 of 3 large replies (9.5 KB) lost" in classify(some_lost, [], settings).verdict
    lossy = classify(pings_lost, [], settings)
    assert lossy.status == "lossy" and "1 of 4 pings lost" in lossy.verdict
    assert "the path loses packets" in lossy.verdict
    assert classify(slow, [], settings).status == "slow"
    assert "250.0 ms median, 300.0 ms max" in classify(slow, [], settings).verdict
    assert classify(dead, [], settings).verdict == "tcp:h:1: unusable: cannot connect (refused)."
    assert classify(probe("udp:h:1"), [], settings).status == "ok"


def test_exit_code_ignores_alternatives() -> None:
    good = classify(probe("udp:h:1"), [], DoctorSettings())
    bad = classify(
        Probe(parse_node_spec("tcp:h:2"), error="x"), [], DoctorSettings(), "alternative"
    )
    assert DoctorReport((good, bad)).exit_code == 0
    assert DoctorReport((classify(bad.probe, [], DoctorSettings()), good)).exit_code == 1


def test_config_nodes_are_unique_and_without_weights() -> None:
    sets = [{"name": "b", "nodes": ["udp:127.0.0.1:2223", "ws://127.0.0.1:8080/ng=2"]}]
    config = load_config(None, {"media.nodes": ["udp:127.0.0.1:2223=3"], "media.sets": sets})
    assert config_nodes(config.media) == ["udp:127.0.0.1:2223", "ws://127.0.0.1:8080/ng"]


def test_probe_sdp_has_the_streams_asked_for() -> None:
    sdp = probe_sdp(5)
    assert sdp.count("\r\nm=audio ") == 5 and sdp.endswith("\r\n")


@pytest.mark.parametrize("samples", [1, 3])
def test_json_series_counts(samples: int) -> None:
    report = classify(probe("tcp:h:1", small=samples, small_failed=1), [], DoctorSettings())
    small = report.to_json()["small_ms"]
    assert small == {"median": 0.2, "max": 0.2, "samples": samples, "lost": 1}
