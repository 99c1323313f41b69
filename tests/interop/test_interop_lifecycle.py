"""The proxy process under stress of its own lifecycle: a crash-restart mid-call and a
SIGTERM while calls are flowing."""

from __future__ import annotations

import time

import pytest
from interop_net import HOST
from interop_proxy import ProxyProcess, Topology
from interop_sipmsg import find, parse_trace
from interop_sipp import SippRun, Sipps, expect_success

# Upper bound for the proxy to exit after SIGTERM: sipedge's server.shutdown_grace (5 s by
# default; it only waits for requests still without a final response) plus 2 s of margin
# for a busy 2-CPU box.
SHUTDOWN_BOUND_S = 7.0


def received(run: SippRun, method: str) -> int:
    """How many `method` requests the SIPp run has received so far."""
    return len(find(parse_trace(run.read("messages.log")), sent=False, method=method))


def wait_received(run: SippRun, method: str, count: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if received(run, method) >= count:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.interop
def test_bye_routed_after_proxy_restart(proxy: ProxyProcess, topo: Topology, sipps: Sipps) -> None:
    # Loose routing keeps no per-dialog state in the proxy (RFC 3261 16.12): the BYE carries
    # its Route set, so a freshly started proxy on the same ports routes it like the old one.
    uas = sipps.uas("uas_call.xml", topo.uas, timeout_s=20)
    ruri = f"sip:uas@{HOST}:{topo.uas}"
    uac = sipps.uac("uac_call.xml", topo.proxy, ruri, pause_ms=3000, timeout_s=20)
    assert wait_received(uas, "ACK", 1, 5.0), f"call not established\n{uas.report()}"
    assert received(uas, "BYE") == 0

    proxy.restart()
    assert received(uas, "BYE") == 0, "the BYE left before the restart: hold the call longer"
    expect_success(proxy.describe(), uac, uas)
    assert received(uas, "BYE") == 1
    assert proxy.starts == 2


@pytest.mark.interop
def test_sigterm_under_load_exits_cleanly(
    proxy: ProxyProcess, topo: Topology, sipps: Sipps
) -> None:
    calls = 150  # 50 calls/s for 3 s
    uas = sipps.uas("uas_call.xml", topo.uas, calls=calls, timeout_s=10)
    ruri = f"sip:uas@{HOST}:{topo.uas}"
    uac = sipps.uac(
        "uac_call.xml", topo.proxy, ruri, calls=calls, rate=50, pause_ms=500, timeout_s=10
    )
    assert wait_received(uas, "INVITE", 40, 5.0), f"no load reached the UAS\n{uas.report()}"
    assert uac.proc.poll() is None, "the load ended before SIGTERM"

    started = time.monotonic()
    rc = proxy.terminate(grace=SHUTDOWN_BOUND_S)
    took = time.monotonic() - started
    output = proxy.stderr_text()
    uac.kill()
    uas.kill()
    assert rc is not None, f"still running {SHUTDOWN_BOUND_S}s after SIGTERM\n{proxy.describe()}"
    assert rc == 0, f"exit code {rc} after SIGTERM ({took:.1f}s)\n{proxy.describe()}"
    assert "Traceback" not in output, proxy.describe()
