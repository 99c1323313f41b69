"""The WebRTC gateway guide's configuration (examples/gateway.toml), end to end.

JsSIP in Debian's headless Chromium registers over WSS as ``alice@gw.example.com`` (digest,
in the example's realm) and calls ``1000@gw.example.com``, which nobody registered: the
example's ``proxy.default_upstream`` sends it to the "PBX", a SIPp UAS on UDP. rtpengine
relays the media: the PBX gets plain RTP/AVP, the browser DTLS-SRTP with ICE.

The example is loaded as it is; only what cannot be the same on a test machine is
overridden (:data:`ADAPTED`): addresses and ports, the certificate, the state directory,
the PBX and rtpengine addresses, the allowed origins (the test page is a ``file://`` page)
and the API port. Logs: the proxy's output (debug) in proxy-1.stderr, the browser's
agent-*.log and SIPp's messages.log under the test's tmp_path.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from interop_media import RtpEngineDaemon, media_ports
from interop_net import HOST, PortAllocator, is_bound, ping_udp
from interop_proxy import Topology
from interop_reg import add_user
from interop_sipmsg import find, header_values, parse_trace
from interop_sipp import Sipps, expect_success
from interop_ws import JsAgent, chromium_path, js_problem

from sipedge.config import Config, parse_config, read_toml
from sipedge.config.doc import render_toml

pytestmark = pytest.mark.interop

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gateway.toml"
DOMAIN = "gw.example.com"
PASSWORD = "alice-gw-1"
#: The keys the test changes; everything else is the example's.
ADAPTED = frozenset(
    {
        "server.listen",
        "server.trusted",
        "server.state_dir",
        "server.log_level",
        "tls.cert",
        "tls.key",
        "ws.origins",
        "proxy.default_upstream",
        "media.nodes",
        "api.port",
    }
)


def gateway_config(
    topo: Topology, wss: int, state: Path, certs: Path, rtpengine: RtpEngineDaemon
) -> Config:
    """examples/gateway.toml on loopback test ports."""
    overrides: dict[str, Any] = {
        "server.listen": [f"wss:{HOST}:{wss}", f"udp:{HOST}:{topo.proxy}"],
        # The PBX stand-in shares 127.0.0.1 with the browser: trust neither (the browser
        # must authenticate, as in production); 127.0.0.2 stands for the PBX's address.
        "server.trusted": ["127.0.0.2/32"],
        "server.state_dir": str(state),
        "server.log_level": "debug",
        "tls.cert": str(certs / "cert.pem"),
        "tls.key": str(certs / "key.pem"),
        "ws.origins": [],
        "proxy.default_upstream": f"sip:{HOST}:{topo.uas};transport=udp",
        "media.nodes": [rtpengine.udp],
        "api.port": 0,
    }
    assert set(overrides) == ADAPTED
    return parse_config(read_toml(EXAMPLE), overrides)


class GatewayProxy:
    """``python -m sipedge run`` with the adapted example; ready when WSS is bound and UDP
    answers OPTIONS."""

    def __init__(self, config: Config, workdir: Path, udp: int, wss: int) -> None:
        self.workdir, self.udp, self.wss = workdir, udp, wss
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "sipedge.toml"
        self.config_path.write_text(render_toml(config))
        self.log_path = workdir / "proxy-1.stderr"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, ready_timeout: float = 10.0) -> None:
        cmd = [sys.executable, "-m", "sipedge", "run", "--config", str(self.config_path)]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.workdir, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"gateway exited early\n{self.describe()}")
            if is_bound(self.wss, socket.SOCK_STREAM) and ping_udp(self.udp) is not None:
                return
            time.sleep(0.05)
        raise AssertionError(f"gateway not ready in {ready_timeout}s\n{self.describe()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=5)

    def describe(self, tail: int = 8000) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        rc = None if self.proc is None else self.proc.poll()
        return f"--- gateway (rc={rc}) {self.config_path}, last {tail} chars:\n{text[-tail:]}"


@pytest.fixture(scope="module")
def browser_ready() -> None:
    reason = js_problem()
    if reason is not None:
        pytest.skip(reason)
    if chromium_path() is None:
        pytest.skip("Chromium not installed (Debian package chromium; scripts/test.sh adds it)")


@pytest.fixture
def gateway(
    topo: Topology, ports: PortAllocator, tmp_path: Path, rtpengine: RtpEngineDaemon
) -> Iterator[GatewayProxy]:
    """The gateway from the example, a subscriber in its realm, a test certificate."""
    certs, state = tmp_path / "certs", tmp_path / "state"
    cmd = [sys.executable, "-m", "sipedge", "cert", "selfsigned", "--out-dir", str(certs)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    state.mkdir()
    add_user(state / "users.db", "alice", PASSWORD, realm=DOMAIN)
    wss = ports.take()
    config = gateway_config(topo, wss, state, certs, rtpengine)
    proxy = GatewayProxy(config, tmp_path / "proxy", topo.proxy, wss)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


def test_example_keeps_its_own_settings(
    topo: Topology, tmp_path: Path, rtpengine: RtpEngineDaemon
) -> None:
    """What the test does not adapt is the example's: domain, realm, relay, limits."""
    config = gateway_config(topo, 1, tmp_path, tmp_path, rtpengine)
    assert config.server.domains == (DOMAIN,)
    assert config.auth.realm == DOMAIN and config.auth.algorithms == ("SHA-256", "MD5")
    assert config.media.enabled and config.dialog.max_call_duration == 14400.0
    assert [x.proto for x in config.server.listen] == ["wss", "udp"]


def test_browser_calls_the_pbx_through_the_gateway_example(
    browser_ready: None,
    gateway: GatewayProxy,
    rtpengine: RtpEngineDaemon,
    sipps: Sipps,
    topo: Topology,
    tmp_path: Path,
) -> None:
    uas = sipps.uas("uas_call.xml", topo.uas, timeout_s=15, pause_ms=100)
    browser = JsAgent("jssip-browser", tmp_path / "js")
    try:
        browser.command(
            "start",
            {
                "url": f"wss://{HOST}:{gateway.wss}",
                "uri": f"sip:alice@{DOMAIN}",
                "user": "alice",
                "password": PASSWORD,
                "registrar": f"sip:{DOMAIN}",
                "expires": 60,
                "debug": "JsSIP:*",
            },
        )
        registered = browser.wait_event("registered", "registrationFailed", timeout=8)
        context = f"{browser.report()}\n{gateway.describe()}"
        assert registered["ev"] == "registered", context
        browser.command("call", f"sip:1000@{DOMAIN}")
        confirmed = browser.wait_event("confirmed", "failed", "ended", timeout=10)
        assert confirmed["ev"] == "confirmed", f"{browser.report()}\n{gateway.describe()}"
        held = rtpengine.calls()
        legs = rtpengine.tags(held[0]) if len(held) == 1 else []
        browser.command("hangup")
        browser.wait_event("ended", "failed", timeout=8)
        expect_success(f"{browser.report()}\n{gateway.describe()}", uas)
        answer = browser.wait_event("accepted", timeout=0)["message"]["body"] or ""
    finally:
        browser.close()
    context = f"{uas.report()}\n{gateway.describe()}"

    invite = find(parse_trace(uas.read("messages.log")), sent=False, method="INVITE")[0].text
    assert invite.startswith(f"INVITE sip:1000@{DOMAIN} SIP/2.0"), invite
    record_routes = [e for v in header_values(invite, "Record-Route") for e in v.split(",")]
    assert len(record_routes) == 2, invite  # WSS in, UDP out: two entries (RFC 5658)
    assert "RTP/AVP" in invite and "SAVPF" not in invite, invite
    assert "a=ice-ufrag" not in invite and "a=fingerprint" not in invite, invite
    in_range = [rtpengine.port_min <= p <= rtpengine.port_max for p in media_ports(invite)]
    assert in_range and all(in_range), invite
    assert "UDP/TLS/RTP/SAVPF" in answer and "a=ice-ufrag:" in answer, answer
    assert "a=fingerprint:sha-256" in answer and "a=candidate:" in answer, answer
    assert len(held) == 1 and len(legs) == 2, (held, legs, context)
    deadline = time.monotonic() + 3
    while rtpengine.calls() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rtpengine.calls() == [], context
