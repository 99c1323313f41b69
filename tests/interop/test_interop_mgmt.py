"""The management API of a real sipedge with SIPp calls: /metrics moving, the dashboard in
headless Chromium (overview, ladder of the call), ``sipedge ctl`` ending a call with BYE
both ways, token authentication, and schemathesis fuzzing the OpenAPI document.

Screenshots of every dashboard page go to tests/artifacts/mgmt/ (git-ignored).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from interop_mgmt import ARTIFACTS, MgmtProxy, dashboard_problem, run_dashboard, wait_for
from interop_net import HOST, PortAllocator
from interop_proxy import Topology
from interop_sipmsg import find, parse_trace
from interop_sipp import Sipps, expect_success
from interop_ws import js_problem
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.interop

TOKEN = "interop-token-0123456789"
StartProxy = Callable[..., MgmtProxy]


@pytest.fixture
def start_proxy(topo: Topology, tmp_path: Path, ports: PortAllocator) -> Iterator[StartProxy]:
    started: list[MgmtProxy] = []

    def start(token: str = "") -> MgmtProxy:
        proxy = MgmtProxy(topo, tmp_path / f"proxy{len(started)}", ports.take(), token)
        started.append(proxy)
        proxy.start()
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


def metric_values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def place_call(proxy: MgmtProxy, topo: Topology, sipps: Sipps, calls: int = 1) -> str:
    """SIPp calls through the proxy, completed; the Call-ID of the last one."""
    uas = sipps.uas("uas_call.xml", topo.uas, calls=calls)
    uac = sipps.uac("uac_call.xml", topo.proxy, f"sip:uas@{HOST}:{topo.uas}", calls=calls, rate=20)
    expect_success(proxy.describe(), uac, uas)
    invites = find(parse_trace(uac.read("messages.log")), sent=True, method="INVITE")
    return invites[-1].text.split("Call-ID:", 1)[1].split("\n", 1)[0].strip()


def test_metrics_move_when_sipp_calls(
    start_proxy: StartProxy, topo: Topology, sipps: Sipps
) -> None:
    proxy = start_proxy()
    before = metric_values(proxy.get("/metrics"))
    place_call(proxy, topo, sipps, calls=3)
    after = metric_values(wait_for("BYE in metrics", lambda: _with_byes(proxy, 3)))

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    req, resp = "sipedge_sip_requests_total", "sipedge_sip_responses_total"
    for method in ("INVITE", "ACK", "BYE"):
        assert delta(req, direction="in", method=method) == 3, method
        assert delta(req, direction="out", method=method) == 3, method
    assert delta(resp, direction="in", code="200") == 6  # INVITE and BYE answers, relayed
    assert delta(resp, direction="out", code="180") == 3
    assert delta("sipedge_dialog_events_total", event="started") == 3
    assert delta("sipedge_dialog_events_total", event="ended") == 3
    assert after[("sipedge_dialogs", (("state", "confirmed"),))] == 0
    assert after[("sipedge_event_loop_lag_seconds_count", ())] > 0
    stats = proxy.get("/api/v1/stats")
    assert stats["calls"]["started"] == 3 and stats["calls_active"] == 0


def _with_byes(proxy: MgmtProxy, n: int) -> str | None:
    text: str = proxy.get("/metrics")
    key = ("sipedge_dialog_events_total", (("event", "ended"),))
    return text if metric_values(text).get(key, 0) >= n else None


def test_dashboard_shows_the_call_and_draws_its_ladder(
    start_proxy: StartProxy, topo: Topology, sipps: Sipps, tmp_path: Path
) -> None:
    reason = dashboard_problem() or js_problem()
    if reason is not None:
        pytest.skip(reason)
    proxy = start_proxy()
    call_id = place_call(proxy, topo, sipps)
    wait_for("the call among recent calls", lambda: proxy.get("/api/v1/calls/recent"))
    report = run_dashboard(proxy.url, call_id, ARTIFACTS, tmp_path / "chromium")
    assert report["errors"] == [], report["errors"]
    cards = report["cards"]
    assert int(cards["calls-started"]) >= 1 and cards["calls-active"] == "0", cards
    labels = report["labels"]
    expected = ["INVITE", "180", "200", "ACK", "BYE", "200"]
    it = iter(labels)
    assert all(any(label.startswith(want) for label in it) for want in expected), labels
    assert report["detail"].startswith("in udp") and f"Call-ID: {call_id}" in report["detail"]
    assert "INVITE sip:uas@" in report["detail"]
    assert "Active calls" in report["pages"]["calls"] and "Bans" in report["pages"]["bans"]
    for name in ("overview", "registrations", "calls", "bans", "call"):
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 1000, name


def test_ctl_ends_a_call_with_bye_both_ways(
    start_proxy: StartProxy, topo: Topology, sipps: Sipps
) -> None:
    proxy = start_proxy()
    uas = sipps.uas("uas_call.xml", topo.uas, timeout_s=15)
    uac = sipps.uac("md_uac_wait_bye.xml", topo.proxy, f"sip:uas@{HOST}:{topo.uas}", timeout_s=15)
    live = wait_for(
        "an answered call",
        lambda: [c for c in proxy.get("/api/v1/calls") if c["state"] == "confirmed"],
    )
    call_id = live[0]["call_id"]
    listed = proxy.ctl("calls", "list")
    assert listed.returncode == 0 and call_id in listed.stdout, listed
    ended = proxy.ctl("calls", "end", call_id)
    assert ended.returncode == 0 and ended.stdout.strip() == f"ended {live[0]['key']}", ended
    expect_success(proxy.describe(), uac, uas)  # both answered the proxy's BYE with 200
    for run in (uac, uas):
        assert find(parse_trace(run.read("messages.log")), sent=False, method="BYE"), run.report()
    recent = json.loads(proxy.ctl("--json", "calls", "list", "--recent").stdout)
    assert recent[0]["call_id"] == call_id and recent[0]["end_reason"] == "api"
    again = proxy.ctl("calls", "end", live[0]["key"])
    assert again.returncode == 1 and "HTTP 404" in again.stderr
    stats = json.loads(proxy.ctl("stats", "--json").stdout)
    assert stats["requests_out"]["BYE"] == 2 and stats["calls_active"] == 0
    ladder = proxy.ctl("capture", "show", call_id)
    assert ladder.returncode == 0 and ladder.stdout.count("BYE sip:") == 2, ladder.stdout


def test_token_is_required_and_schemathesis_finds_no_server_error(
    start_proxy: StartProxy, tmp_path: Path
) -> None:
    proxy = start_proxy(token=TOKEN)
    for path in ("/api/v1/stats", "/api/v1/bans", "/metrics", "/api/v1/calls"):
        status, _ = proxy.api("GET", path, token="")
        assert status == 401, path
        assert proxy.api("GET", path, token="wrong-token-wrong-token")[0] == 401
        assert proxy.api("GET", path)[0] == 200
    assert proxy.api("POST", "/api/v1/bans", {"ip": "192.0.2.1"}, token="")[0] == 401
    assert proxy.api("GET", "/api/v1/bans")[1] == []
    assert proxy.api("GET", "/api/v1/health", token="")[0] == 200
    exe = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("schemathesis is not installed (dev extra)")
    cmd = [
        exe,
        "run",
        f"{proxy.url}/api/openapi.json",
        "--header",
        f"Authorization: Bearer {TOKEN}",
        "--checks",
        "all",
        "--exclude-checks",
        "positive_data_acceptance,allow_header_conformance,ignored_auth",
        "--max-examples",
        "12",
        "--seed",
        "7",
        "--workers",
        "2",
        "--request-timeout",
        "5",
    ]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert proxy.proc is not None and proxy.proc.poll() is None, proxy.describe()
    assert "Exception in ASGI application" not in proxy.stderr_text(), proxy.describe()
