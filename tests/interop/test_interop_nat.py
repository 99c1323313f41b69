"""NAT traversal through a real NAT: network namespaces, iptables MASQUERADE, conntrack.

A "home" namespace sits behind a "router" namespace that MASQUERADEs (random ports) and
forgets idle UDP mappings after 3 s; sipedge and the provider's SIPp run in a "provider"
namespace (see interop_nat_net). A SIPp UA and baresip in the home namespace register
through the NAT; calls from the provider reach them and complete, in-dialog requests
(ACK, BYE either way) follow the NAT mapping through sipedge's Record-Route flow token,
sipedge's OPTIONS keepalives hold the mapping open across idle time, and without them the
mapping is lost and the call fails. A forged flow token is refused.

Skipped unless root with ``ip netns`` and iptables. Every namespace is created for this
module with a unique name and deleted at the end, whatever happens.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from interop_nat import (
    PASSWORDS,
    PROVIDER_UAS,
    SIP_PORT,
    UAC_WAIT_BYE,
    NsBaresip,
    NsSipedge,
    NsSipp,
    make_users,
    udp_exchange,
)
from interop_nat_net import HOME_IP, PROVIDER_IP, ROUTER_WAN, NatTopology, netns_unavailable
from interop_reg import baresip_path
from interop_sipmsg import Traced, find, header_values, parse_trace

EDGE = f"{PROVIDER_IP}:{SIP_PORT}"
IDLE = 4.5  # longer than the router's 3 s UDP conntrack timeout

StartEdge = Callable[[str], NsSipedge]


@pytest.fixture(scope="module")
def topo() -> Iterator[NatTopology]:
    reason = netns_unavailable()
    if reason is not None:
        pytest.skip(reason)
    net = NatTopology(udp_timeout=3)
    try:
        net.create()
        yield net
    finally:
        net.destroy()


@pytest.fixture(scope="module")
def users_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("nat-users") / "users.db"
    make_users(db)
    return db


@pytest.fixture
def start_edge(topo: NatTopology, users_db: Path, tmp_path: Path) -> Iterator[StartEdge]:
    started: list[NsSipedge] = []

    def start(keepalive: str) -> NsSipedge:
        edge = NsSipedge(topo.provider, tmp_path / "sipedge", users_db, keepalive)
        started.append(edge)
        edge.start()
        return edge

    try:
        yield start
    finally:
        for edge in started:
            edge.stop()


@pytest.fixture
def runs() -> Iterator[list[NsSipp]]:
    started: list[NsSipp] = []
    try:
        yield started
    finally:
        for run in started:
            run.kill()


def sipp(runs: list[NsSipp], *args: object, **kw: object) -> NsSipp:
    run = NsSipp(*args, **kw)
    runs.append(run)
    return run


def expect_ok(context: str, *started: NsSipp) -> None:
    """Wait for every run (the one that ends first, first) and require exit code 0."""
    codes: list[int] = []
    for run in started:
        codes.append(run.wait(timeout=2.0 if any(codes) else None))
    if any(codes):
        reports = "\n".join(r.report() for r in started)
        raise AssertionError(f"SIPp exit codes {codes}\n{reports}\n{context}")


def trace(run: NsSipp) -> list[Traced]:
    return parse_trace(run.read("messages.log"))


def context(topo: NatTopology, edge: NsSipedge) -> str:
    return f"{edge.describe()}\n--- router conntrack (udp):\n{topo.conntrack_udp()}"


def register_alice(runs: list[NsSipp], topo: NatTopology, tmp: Path, port: int) -> NsSipp:
    keys = {"ruri": f"sip:{EDGE}", "contact": f"sip:alice@{HOME_IP}:{port}"}
    keys["expires"] = "60"
    auth = ("-s", "alice", "-au", "alice", "-ap", PASSWORDS["alice"])
    return sipp(
        runs,
        topo.home,
        f"reg-{port}",
        tmp,
        "reg_auth.xml",
        (HOME_IP, port),
        remote=EDGE,
        keys=keys,
        extra=auth,
    )


def answering_uas(runs: list[NsSipp], topo: NatTopology, tmp: Path, port: int) -> NsSipp:
    """alice's SIPp UAS on her registered port; it answers keepalives too (-aa)."""
    return sipp(
        runs,
        topo.home,
        "alice-uas",
        tmp,
        "uas_call.xml",
        (HOME_IP, port),
        extra=("-aa",),
        timeout_s=30,
        calls=0,
    )


def call_alice(runs: list[NsSipp], topo: NatTopology, tmp: Path, timeout_s: float) -> NsSipp:
    keys = {"ruri": f"sip:alice@{PROVIDER_IP}", "caller": "sip:caller@example.net"}
    return sipp(
        runs,
        topo.provider,
        "provider-uac",
        tmp,
        "reg_uac_call.xml",
        (PROVIDER_IP, 5070),
        remote=EDGE,
        keys=keys,
        pause_ms=200,
        timeout_s=timeout_s,
    )


@pytest.mark.interop
def test_sipp_behind_nat_registers_and_is_called_after_idle_time(
    topo: NatTopology, start_edge: StartEdge, runs: list[NsSipp], tmp_path: Path
) -> None:
    edge = start_edge("options")
    port = 5062
    reg = register_alice(runs, topo, tmp_path, port)
    expect_ok(context(topo, edge), reg)
    ok = [m for m in find(trace(reg), sent=False) if m.status == 200][-1]
    (contact,) = header_values(ok.text, "contact")
    # The binding keeps the observed flow: the router's public address and NAT port.
    seen = re.search(rf'received="sip:{re.escape(ROUTER_WAN)}:(\d+)"', contact)
    assert seen and contact.startswith(f"<sip:alice@{HOME_IP}:{port}>"), ok.text
    uas = answering_uas(runs, topo, tmp_path, port)
    time.sleep(IDLE)  # only sipedge's keepalives can keep the NAT mapping open now
    uac = call_alice(runs, topo, tmp_path, timeout_s=8)
    expect_ok(context(topo, edge), uac)
    time.sleep(0.3)  # the UAS's 200 to BYE is on its way
    uas.kill()
    got = find(trace(uas), sent=False)
    pings = [m for m in got if m.method == "OPTIONS"]
    assert len(pings) >= 3, f"keepalives seen: {len(pings)}\n{context(topo, edge)}"
    assert all(m.first_line == f"OPTIONS sip:alice@{HOME_IP}:{port} SIP/2.0" for m in pings)
    invite = next(m for m in got if m.method == "INVITE")
    assert invite.first_line == f"INVITE sip:alice@{HOME_IP}:{port} SIP/2.0", invite.text
    assert "ft-" in header_values(invite.text, "record-route")[0], invite.text
    # The provider's ACK and BYE went to alice's private Contact: only the flow token in
    # our Record-Route got them through the NAT.
    assert [m.method for m in got if m.method in ("ACK", "BYE")] == ["ACK", "BYE"]
    answer = next(m for m in find(trace(uac), sent=False) if m.status == 200)
    # SDP fixed to the address the answer came from (the NAT), old one kept.
    assert f"c=IN IP4 {ROUTER_WAN}" in answer.text and f"a=oldcip:{HOME_IP}" in answer.text


@pytest.mark.interop
def test_without_keepalives_the_mapping_expires_and_the_call_fails(
    topo: NatTopology, start_edge: StartEdge, runs: list[NsSipp], tmp_path: Path
) -> None:
    edge = start_edge("off")
    port = 5068
    expect_ok(context(topo, edge), register_alice(runs, topo, tmp_path, port))
    uas = answering_uas(runs, topo, tmp_path, port)
    time.sleep(IDLE)
    uac = call_alice(runs, topo, tmp_path, timeout_s=4)
    assert uac.wait() != 0, f"the call got through without keepalives\n{uac.report()}"
    uas.kill()
    got = find(trace(uas), sent=False)
    assert got == [], f"reached alice: {[m.first_line for m in got]}"


@pytest.mark.interop
def test_sipp_behind_nat_calls_out_and_the_callee_hangs_up(
    topo: NatTopology, start_edge: StartEdge, runs: list[NsSipp], tmp_path: Path
) -> None:
    edge = start_edge("options")
    scenario = tmp_path / "nat_uac_wait_bye.xml"
    scenario.write_text(UAC_WAIT_BYE)
    uas = sipp(
        runs,
        topo.provider,
        "provider-uas",
        tmp_path,
        "mx_uas_bye.xml",
        (PROVIDER_IP, PROVIDER_UAS),
        pause_ms=300,
    )
    uac = sipp(
        runs,
        topo.home,
        "home-uac",
        tmp_path,
        str(scenario),
        (HOME_IP, 5064),
        remote=EDGE,
        keys={"ruri": f"sip:pstn1@{PROVIDER_IP}"},
    )
    expect_ok(context(topo, edge), uac, uas)
    invite = find(trace(uas), sent=False, method="INVITE")[0]
    # Contact as sent (non-destructive); our Record-Route names the caller's NAT mapping
    # in an entry of its own; SDP fixed to the NAT's public address.
    assert header_values(invite.text, "contact") == [f"<sip:uac@{HOME_IP}:5064>"]
    rr = header_values(invite.text, "record-route")
    assert len(rr) == 2 and "ft-" not in rr[0] and "ft-" in rr[1], invite.text
    assert f"c=IN IP4 {ROUTER_WAN}" in invite.text, invite.text
    # The callee's BYE, addressed to the private Contact, came through the NAT.
    bye = find(trace(uac), sent=False, method="BYE")[0]
    assert bye.first_line == f"BYE sip:uac@{HOME_IP}:5064 SIP/2.0", bye.text


@pytest.mark.interop
def test_baresip_behind_nat_answers_and_hangs_up(
    topo: NatTopology, start_edge: StartEdge, runs: list[NsSipp], tmp_path: Path
) -> None:
    if baresip_path() is None:
        pytest.skip("baresip is not installed (Debian package baresip-core)")
    edge = start_edge("options")
    account = (
        f"<sip:carol@{PROVIDER_IP};transport=udp>;auth_pass={PASSWORDS['carol']}"
        ";regint=60;audio_codecs=PCMU;answermode=auto"
    )
    ua = NsBaresip(topo.home, tmp_path / "baresip", 5066, account)
    scenario = tmp_path / "nat_uac_wait_bye.xml"
    scenario.write_text(UAC_WAIT_BYE)
    try:
        ua.start()
        ua.wait_registered(8)
        uac = sipp(
            runs,
            topo.provider,
            "provider-uac",
            tmp_path,
            str(scenario),
            (PROVIDER_IP, 5072),
            remote=EDGE,
            keys={"ruri": f"sip:carol@{PROVIDER_IP}"},
            timeout_s=10,
        )
        ua.wait_event("CALL_ESTABLISHED", 6)
        time.sleep(0.3)
        ua.command("hangup")  # BYE from behind the NAT
        expect_ok(context(topo, edge), uac)
        ua.wait_event("CALL_CLOSED", 5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{ua.report()}\n{context(topo, edge)}") from None
    finally:
        ua.stop()
    got = find(trace(uac), sent=False)
    bye = next(m for m in got if m.method == "BYE")
    assert "ft-" not in bye.text and bye.first_line.startswith("BYE sip:uac@"), bye.text


def from_mallory(method: str, route_user: str = "", to_tag: str = "") -> Callable[[int], bytes]:
    """A request from an untrusted caller on the internet side to a premium-rate number,
    with our address in a Route (and a flow token ``route_user``, a To tag ``to_tag``):
    toll fraud if it were relayed."""
    user = f"{route_user}@" if route_user else ""
    tag = f";tag={to_tag}" if to_tag else ""

    def build(port: int) -> bytes:
        return (
            f"{method} sip:+88213000001@198.51.100.66:5060 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {HOME_IP}:{port};branch=z9hG4bK-mallory-{port};rport\r\n"
            f"Route: <sip:{user}{PROVIDER_IP}:{SIP_PORT};lr>\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:mallory@{HOME_IP}>;tag=m1\r\n"
            f"To: <sip:+88213000001@198.51.100.66>{tag}\r\n"
            f"Call-ID: mallory-{port}\r\nCSeq: 7 {method}\r\n"
            f"Contact: <sip:mallory@{HOME_IP}:{port}>\r\nContent-Length: 0\r\n\r\n"
        ).encode()

    return build


@pytest.mark.interop
def test_forged_flow_token_is_refused(topo: NatTopology, start_edge: StartEdge) -> None:
    from sipedge.proxy.flowtoken import FlowTokens
    from sipedge.transport.base import Flow

    edge = start_edge("options")
    outside = Flow("udp", (PROVIDER_IP, SIP_PORT), ("198.51.100.66", 5060))
    for user in ("ft-" + "q" * 48, FlowTokens(b"not-sipedges-key" * 2).encode(outside)):
        got = udp_exchange(topo.home, HOME_IP, from_mallory("INVITE", user), wait=2.0)
        assert got is not None and got.startswith(b"SIP/2.0 403 "), (got, edge.describe())


@pytest.mark.interop
def test_made_up_dialog_is_not_relayed(topo: NatTopology, start_edge: StartEdge) -> None:
    """From an untrusted address on the internet side, a re-INVITE or BYE with a To tag
    and our Route, but without the Record-Route MAC of a dialog we recorded, gets 403."""
    edge = start_edge("options")
    for method in ("INVITE", "BYE"):
        got = udp_exchange(topo.home, HOME_IP, from_mallory(method, to_tag="x1"), wait=2.0)
        assert got is not None and got.startswith(b"SIP/2.0 403 "), (got, edge.describe())
