"""Calls across every pair of transports through one running sipedge.

One sipedge listens on UDP, TCP, TLS, WS and WSS. SIPp calls over TCP, and over TLS
through an stunnel client, to a SIPp UAS on UDP. Then the tiny UA of interop_matrix calls
from each transport to each transport: callees on UDP, TCP and TLS are reached by static
routes, WS and WSS callees by their registration. Every pair makes two calls, one hung up
by each side, and the Record-Route entries are checked: one per side of a transport change
(RFC 5658), each naming its transport, a flow token facing every stream or WebSocket
client (RFC 5626 §5.3, RFC 7118 §5).
"""

from __future__ import annotations

import asyncio
import re
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from interop_matrix import (
    STREAMS,
    TRANSPORTS,
    Link,
    MatrixPorts,
    MatrixProxy,
    MiniUA,
    StreamLink,
    Stunnel,
    UdpLink,
    WsLink,
    both,
    client_tls,
    make_cert,
    rr_transport,
    rr_user,
    server_tls,
    stunnel_path,
)
from interop_net import HOST, PortAllocator
from interop_sipmsg import Traced, entries, find, parse_trace
from interop_sipp import SippRun, Sipps, expect_success

PAIRS = [(a, b) for a in TRANSPORTS for b in TRANSPORTS]


@pytest.fixture(scope="module")
def cert_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_cert(tmp_path_factory.mktemp("mx-cert"))


@pytest.fixture(scope="module")
def mx_proxy(
    ports: PortAllocator, cert_pair: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MatrixProxy]:
    """One sipedge on all five transports, shared by the whole module."""
    mx = MatrixPorts(*(ports.take() for _ in range(7)))
    proxy = MatrixProxy(mx, tmp_path_factory.mktemp("mx-proxy"), *cert_pair)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture(scope="module")
def stunnel(
    ports: PortAllocator,
    mx_proxy: MatrixProxy,
    cert_pair: tuple[Path, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stunnel]:
    if stunnel_path() is None:
        pytest.skip("stunnel is not installed (Debian package stunnel4)")
    tunnel = Stunnel(
        tmp_path_factory.mktemp("stunnel"), ports.take(), mx_proxy.ports.tls, cert_pair[0]
    )
    try:
        yield tunnel
    finally:
        tunnel.stop()


# --- SIPp over TCP and over TLS (stunnel) to a SIPp UAS on UDP ---------------------------


def trace(run: SippRun) -> list[Traced]:
    return parse_trace(run.read("messages.log"))


@pytest.mark.interop
@pytest.mark.parametrize("hangup", ["caller", "callee"])
@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_sipp_stream_caller_to_udp_uas(
    mx_proxy: MatrixProxy,
    stunnel: Stunnel,
    sipps: Sipps,
    ports: PortAllocator,
    transport: str,
    hangup: str,
) -> None:
    uas_port = ports.take()
    if hangup == "caller":
        uas_scn, uac_scn = "uas_call.xml", "uac_call.xml"
    else:
        uas_scn, uac_scn = "mx_uas_bye.xml", "mx_uac_wait_bye.xml"
    uas = sipps.uas(uas_scn, uas_port, calls=3, pause_ms=50 if hangup == "callee" else 0)
    # SIPp speaks TCP either to sipedge's TCP listener or to stunnel, which speaks TLS on.
    dest = mx_proxy.ports.sip if transport == "tcp" else stunnel.accept
    ruri = f"sip:uas@{HOST}:{uas_port}"
    uac = sipps.uac(uac_scn, dest, ruri, transport="tcp", calls=3, rate=20, pause_ms=100)
    expect_success(mx_proxy.describe() + "\n" + stunnel.report(), uac, uas)

    invites = find(trace(uas), sent=False, method="INVITE")
    assert len(invites) == 3
    stream_port = mx_proxy.ports.proxy_port(transport)
    for invite in invites:
        rr = entries(invite.text, "record-route")
        # RFC 5658: top entry faces the UAS (UDP, no transport parameter), the second the
        # caller, with transport=tcp or transport=tls and the token of its connection.
        assert [rr_transport(e) for e in rr] == ["udp", transport], rr
        assert f"{HOST}:{mx_proxy.ports.sip};" in rr[0], rr
        assert f"{HOST}:{stream_port};transport={transport};" in rr[1], rr
        assert rr_user(rr[1]).startswith("ft-"), rr

    if hangup == "caller":
        sender, receiver = uac, uas
    else:
        sender, receiver = uas, uac
    sent = find(trace(sender), sent=True, method="BYE")
    got = find(trace(receiver), sent=False, method="BYE")
    assert len(got) == 3, [m.text for m in got]
    assert all(len(entries(m.text, "route")) == 2 for m in sent), [m.text for m in sent]
    # The proxy consumed both of its entries (RFC 3261 §16.4) before forwarding.
    assert all(entries(m.text, "route") == [] for m in got), [m.text for m in got]


# --- the full matrix with the tiny UA ------------------------------------------------------


@dataclass
class PairResult:
    """What one (inbound, outbound) pair produced: Record-Route at both ends of two calls
    and the BYEs each side received."""

    rr_callee: list[list[str]] = field(default_factory=list)
    rr_caller: list[list[str]] = field(default_factory=list)
    bye_at_callee: Traced | None = None
    bye_at_caller: Traced | None = None
    caller_contact: str = ""
    callee_contact: str = ""
    error: str | None = None


async def _call(caller: MiniUA, callee: MiniUA, ruri: str, hangup: str, res: PairResult) -> None:
    c_dlg, e_dlg = await both(caller.invite(ruri), callee.answer())
    res.rr_caller.append(c_dlg.record_route)
    res.rr_callee.append(e_dlg.record_route)
    if hangup == "caller":
        ok, res.bye_at_callee = await both(caller.bye(c_dlg), callee.take_bye(e_dlg))
    else:
        ok, res.bye_at_caller = await both(callee.bye(e_dlg), caller.take_bye(c_dlg))
    assert ok.status == 200, ok.text


def _drain(*uas: MiniUA) -> None:
    """Forget leftovers of a failed call so they cannot match in the next one."""
    for ua in uas:
        ua.pending.clear()
        while not ua.link.inbox.empty():
            ua.link.inbox.get_nowait()


async def _pair(caller: MiniUA, callee: MiniUA, ruri: str) -> PairResult:
    res = PairResult(caller_contact=caller.contact_uri, callee_contact=callee.contact_uri)
    try:
        await _call(caller, callee, ruri, "caller", res)
        await _call(caller, callee, ruri, "callee", res)
    except BaseException as exc:  # an ExceptionGroup or a timeout from `both`
        res.error = "".join(traceback.format_exception(exc))
        _drain(caller, callee)
    return res


async def _open(proxy: MatrixProxy, cert: Path, key: Path) -> tuple[dict[str, MiniUA], ...]:
    p = proxy.ports
    links: dict[str, Link] = {
        "udp": await UdpLink.open(p.sip, p.udp_uas),
        "tcp": await StreamLink.serve("tcp", p.tcp_uas, None),
        "tls": await StreamLink.serve("tls", p.tls_uas, server_tls(cert, key)),
        "ws": await WsLink.connect("ws", p.ws, None),
        "wss": await WsLink.connect("wss", p.wss, cert),
    }
    users = {"udp": "to-udp", "tcp": "to-tcp", "tls": "to-tls", "ws": "ws-callee"}
    users["wss"] = "wss-callee"
    callees = {t: MiniUA(f"{t}-callee", links[t], users[t]) for t in TRANSPORTS}
    for t in ("ws", "wss"):  # RFC 7118 §5: a WebSocket client is reached by registering
        aor = f"sip:{users[t]}@{proxy.domain}"
        ok = await callees[t].register(f"sip:{proxy.domain}", aor)
        assert ok.status == 200, ok.text
    callers = {
        "udp": MiniUA("udp-caller", await UdpLink.open(p.sip), "caller-udp"),
        "tcp": MiniUA("tcp-caller", await StreamLink.connect("tcp", p.sip, None), "caller-tcp"),
        "tls": MiniUA(
            "tls-caller", await StreamLink.connect("tls", p.tls, client_tls(cert)), "caller-tls"
        ),
        "ws": MiniUA("ws-caller", await WsLink.connect("ws", p.ws, None), "caller-ws"),
        "wss": MiniUA("wss-caller", await WsLink.connect("wss", p.wss, cert), "caller-wss"),
    }
    return callers, callees


async def _run_matrix(
    proxy: MatrixProxy, cert: Path, key: Path
) -> dict[tuple[str, str], PairResult]:
    callers, callees = await _open(proxy, cert, key)
    results: dict[tuple[str, str], PairResult] = {}
    try:
        for inbound, outbound in PAIRS:
            if proxy.proc is not None and proxy.proc.poll() is not None:
                results[inbound, outbound] = PairResult(error="sipedge has exited")
                continue
            callee = callees[outbound]
            ruri = f"sip:{callee.user}@{proxy.domain}"
            results[inbound, outbound] = await _pair(callers[inbound], callee, ruri)
    finally:
        for ua in (*callers.values(), *callees.values()):
            await ua.link.close()
    return results


@pytest.fixture(scope="module")
def matrix(
    mx_proxy: MatrixProxy, cert_pair: tuple[Path, Path]
) -> dict[tuple[str, str], PairResult]:
    """Every pair's two calls, made once for the module (about a second in all)."""
    return asyncio.run(asyncio.wait_for(_run_matrix(mx_proxy, *cert_pair), 60))


def _unsigned(rr: list[str]) -> list[str]:
    """A call's Record-Route entries without their dialog MAC, which every entry carries
    and which is the same in all of them (one dialog)."""
    macs = {m for e in rr for m in re.findall(r";dlg=([0-9a-f]{16})", e)}
    assert len(macs) == 1 and all(";dlg=" in e for e in rr), rr
    return [re.sub(r";dlg=[0-9a-f]{16}", "", e) for e in rr]


def _check_bye(bye: Traced | None, contact: str, who: str) -> None:
    assert bye is not None, f"no BYE reached the {who}"
    # Sent to the dialog's remote target with the proxy's Route entries consumed.
    assert bye.first_line == f"BYE {contact} SIP/2.0", bye.text
    assert entries(bye.text, "route") == [], bye.text


@pytest.mark.interop
@pytest.mark.parametrize(("inbound", "outbound"), PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
def test_transport_matrix_call(
    matrix: dict[tuple[str, str], PairResult],
    mx_proxy: MatrixProxy,
    inbound: str,
    outbound: str,
) -> None:
    res = matrix[inbound, outbound]
    assert res.error is None, f"{res.error}\n{mx_proxy.describe()}"
    # Both calls saw the same Record-Route at both ends (the 2xx carries it back).
    assert len(res.rr_callee) == 2 and res.rr_caller == res.rr_callee, res
    rr = _unsigned(res.rr_callee[0])
    # Same connections, same flow tokens; each call its own dialog MAC.
    assert _unsigned(res.rr_callee[1]) == rr and res.rr_callee[0] != res.rr_callee[1], res
    kinds = [rr_transport(e) for e in rr]
    if inbound != outbound:
        # RFC 5658 §4: top entry faces the callee side, the second the caller side.
        assert kinds == [outbound, inbound], rr
    else:
        assert 1 <= len(rr) <= 2 and set(kinds) == {inbound}, rr
    for entry, kind in zip(rr, kinds, strict=True):
        assert f"{HOST}:{mx_proxy.ports.proxy_port(kind)}" in entry and ";lr" in entry, rr
    if inbound in STREAMS:  # the caller is reached over its own connection only
        assert rr_user(rr[-1]).startswith("ft-"), rr
    if outbound in ("ws", "wss"):  # so is a WebSocket callee
        assert rr_user(rr[0]).startswith("ft-"), rr
    _check_bye(res.bye_at_callee, res.callee_contact, f"{outbound} callee")
    _check_bye(res.bye_at_caller, res.caller_contact, f"{inbound} caller")
