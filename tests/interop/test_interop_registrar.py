"""sipedge as registrar and authenticating proxy, with real SIPp and baresip over loopback.

The proxy trusts no source (``server.trusted = []``): REGISTER is challenged with 401
(RFC 3261 §22.2), a request From one of its users with 407 (§22.3). A request for a local
AOR goes to the AOR's bindings (§10.3, §16.5), 404 for an unknown user, 480 for a known
user without binding. Subscribers are made once with ``sipedge user add`` and copied into
each test's state_dir. SIPp 3.6 answers only the first challenge header and only MD5, so
MD5 is offered first; its digest ``uri`` is ``sip:<proxy address>`` unless -auth_uri says
otherwise, which matters for requests whose Request-URI names a user.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from interop_net import HOST, PortAllocator
from interop_proxy import Topology
from interop_reg import (
    REALM,
    Baresip,
    RawRegistrar,
    RegistrarProxy,
    Reply,
    add_user,
    auth_params,
    baresip_path,
    sipp_client,
    sipp_register,
)
from interop_sipmsg import Traced, entries, find, header_values, parse_trace
from interop_sipp import SippRun, Sipps, expect_success

PASSWORDS = {
    "alice": "alice-pw-1",  # a local caller (and the lifecycle AOR)
    "bob": "bob-pw-2",  # a callee running a SIPp UAS
    "carol": "carol-pw-3",  # baresip
    "dave": "dave-pw-4",  # two devices
    "frank": "frank-pw-5",  # known, never registered
}
FOREIGN = "sip:caller@example.net"  # not our domain: no challenge (RFC 3261 §22.3 is ours)

StartProxy = Callable[..., RegistrarProxy]


@pytest.fixture(scope="module")
def users_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """users.db with every subscriber of PASSWORDS, made with the sipedge CLI."""
    db = tmp_path_factory.mktemp("subscribers") / "users.db"
    for name, password in PASSWORDS.items():
        add_user(db, name, password)
    return db


@pytest.fixture
def start_proxy(topo: Topology, tmp_path: Path, users_db: Path) -> Iterator[StartProxy]:
    """start_proxy(algorithms=...): a started RegistrarProxy, stopped at teardown."""
    started: list[RegistrarProxy] = []

    def start(algorithms: tuple[str, ...] = ("MD5", "SHA-256")) -> RegistrarProxy:
        proxy = RegistrarProxy(topo, tmp_path / "proxy", users_db, algorithms)
        started.append(proxy)
        proxy.start()
        return proxy

    try:
        yield start
    finally:
        for proxy in started:
            proxy.stop()


@pytest.fixture
def proxy(start_proxy: StartProxy) -> RegistrarProxy:
    return start_proxy()


def trace(run: SippRun) -> list[Traced]:
    return parse_trace(run.read("messages.log"))


def finals(run: SippRun) -> list[Traced]:
    """Final responses SIPp received, in order, one per CSeq and status (a response
    retransmitted because SIPp retransmitted its request is counted once)."""
    seen: set[tuple[str, int | None]] = set()
    out = []
    for m in find(trace(run), sent=False):
        key = (header_values(m.text, "cseq")[0], m.status)
        if m.status and m.status >= 200 and key not in seen:
            seen.add(key)
            out.append(m)
    return out


def statuses(run: SippRun) -> list[int]:
    return [m.status or 0 for m in finals(run)]


def oks(run: SippRun) -> list[Traced]:
    return [m for m in finals(run) if m.status == 200]


def contact_expiries(msg: Traced) -> dict[str, int]:
    """Contact URI -> expires of a REGISTER 200 (RFC 3261 §10.3 step 8)."""
    out = {}
    for entry in entries(msg.text, "contact"):
        m = re.fullmatch(r"<([^>]+)>.*;\s*expires=(\d+).*", entry)
        assert m, f"Contact without expires in a 200 to REGISTER: {entry!r}\n{msg.text}"
        out[m.group(1)] = int(m.group(2))
    return out


def ok(proxy: RegistrarProxy, *runs: SippRun) -> None:
    expect_success(proxy.describe(), *runs)


def register(
    sipps: Sipps, proxy: RegistrarProxy, user: str, port: int, expires: int = 60
) -> SippRun:
    """REGISTER ``user`` from ``port`` (also its Contact) and require the 200."""
    run = sipp_register(sipps, proxy, user, PASSWORDS[user], port=port, expires=expires)
    ok(proxy, run)
    return run


def call_status(sipps: Sipps, proxy: RegistrarProxy, user: str) -> int:
    """A foreign caller's INVITE to ``user``; the proxy's final status (404 or 480)."""
    uri = proxy.aor(user)
    run = sipp_client(sipps, "reg_uac_reject.xml", proxy.topo.proxy, uri, keys={"caller": FOREIGN})
    ok(proxy, run)
    return statuses(run)[0]


def foreign_call(sipps: Sipps, proxy: RegistrarProxy, user: str, pause_ms: int = 100) -> SippRun:
    keys = {"caller": FOREIGN}
    uri = proxy.aor(user)
    return sipp_client(
        sipps, "reg_uac_call.xml", proxy.topo.proxy, uri, keys=keys, pause_ms=pause_ms
    )


# --- 1. REGISTER with digest


@pytest.mark.interop
def test_register_md5_digest_lists_contact_with_expiry(proxy: RegistrarProxy, sipps: Sipps) -> None:
    port = sipps.take_port()
    run = register(sipps, proxy, "alice", port, expires=300)
    assert statuses(run) == [401, 200], proxy.describe()
    got = find(trace(run), sent=False)
    challenge = next(m for m in got if m.status == 401)
    offered = header_values(challenge.text, "www-authenticate")
    params = [dict((n, v) for n, v, _ in auth_params(c)) for c in offered]
    assert [p.get("algorithm") for p in params] == ["MD5", "SHA-256"], offered
    assert all(p.get("realm") == REALM and p.get("qop") == "auth" for p in params), offered
    sent = find(trace(run), sent=True, method="REGISTER")[1]
    assert "algorithm=MD5" in header_values(sent.text, "authorization")[0]
    expiries = contact_expiries(oks(run)[0])
    contact = f"sip:alice@{HOST}:{port}"
    assert list(expiries) == [contact], oks(run)[0].text
    assert 295 <= expiries[contact] <= 300, expiries


@pytest.mark.interop
def test_wrong_password_is_challenged_again_never_200(proxy: RegistrarProxy, sipps: Sipps) -> None:
    run = sipp_register(sipps, proxy, "bob", "not-bobs-password", scenario="reg_badpass.xml")
    ok(proxy, run)  # the scenario fails on anything but 401 to the second REGISTER
    assert statuses(run) == [401, 401], statuses(run)
    # Nothing was bound: bob is a known user without a binding.
    assert call_status(sipps, proxy, "bob") == 480, proxy.describe()


@pytest.mark.interop
def test_refresh_unregister_and_wildcard(proxy: RegistrarProxy, sipps: Sipps) -> None:
    first, second, third = (f"sip:alice@{HOST}:{p}" for p in (21001, 21002, 21003))
    more = {"contact2": second, "contact3": third}
    run = sipp_register(
        sipps,
        proxy,
        "alice",
        PASSWORDS["alice"],
        scenario="reg_lifecycle.xml",
        contact=first,
        keys=more,
    )
    ok(proxy, run)
    assert statuses(run) == [401, 200, 200, 200, 200, 200], statuses(run)
    bound = [list(contact_expiries(m)) for m in oks(run)]
    assert bound == [
        [first],  # registered
        [first],  # refreshed with the same Call-ID and CSeq+1: still one binding (§10.3)
        [],  # the Contact again with Expires: 0: removed
        [second, third],  # two contacts at once
        [],  # Contact: * with Expires: 0 removes all (§10.2.2)
    ], bound
    assert call_status(sipps, proxy, "alice") == 480, proxy.describe()


@pytest.mark.interop
def test_short_expiry_removes_binding_on_time(
    proxy: RegistrarProxy, topo: Topology, sipps: Sipps
) -> None:
    registered = time.monotonic()
    run = register(sipps, proxy, "bob", topo.uas, expires=2)
    assert list(contact_expiries(oks(run)[0]).values()) in ([2], [1]), oks(run)[0].text
    # Bound: a call reaches the device while the binding lives ...
    uas = sipps.uas("uas_call.xml", topo.uas)
    ok(proxy, foreign_call(sipps, proxy, "bob"), uas)
    # ... and once it has expired bob is a known user without binding (480), while an
    # unknown user is 404.
    time.sleep(max(0.0, registered + 2.6 - time.monotonic()))
    assert call_status(sipps, proxy, "bob") == 480, proxy.describe()
    assert call_status(sipps, proxy, "nobody") == 404, proxy.describe()


# --- 2. calls to a registered SIPp UAS


@pytest.mark.interop
def test_foreign_caller_reaches_registered_uas(
    proxy: RegistrarProxy, topo: Topology, sipps: Sipps
) -> None:
    register(sipps, proxy, "bob", topo.uas)  # the UAS's own port is its Contact
    uas = sipps.uas("uas_call.xml", topo.uas)
    uac = foreign_call(sipps, proxy, "bob")
    ok(proxy, uac, uas)
    assert 407 not in statuses(uac), "a foreign caller must not be challenged"
    invite = find(trace(uas), sent=False, method="INVITE")[0]
    # Retargeted to the binding (RFC 3261 §16.5, §16.6 step 2).
    assert invite.first_line == f"INVITE sip:bob@{HOST}:{topo.uas} SIP/2.0", invite.text


@pytest.mark.interop
def test_local_caller_answers_407_with_proxy_authorization(
    proxy: RegistrarProxy, topo: Topology, sipps: Sipps
) -> None:
    register(sipps, proxy, "bob", topo.uas)
    uas = sipps.uas("uas_call.xml", topo.uas)
    bob = proxy.aor("bob")
    # SIPp's digest uri would be sip:127.0.0.1:PORT; sipedge wants the Request-URI
    # (RFC 7616 §3.4.6), hence -auth_uri (SIPp adds the "sip:").
    extra = ("-au", "alice", "-ap", PASSWORDS["alice"], "-auth_uri", bob.removeprefix("sip:"))
    keys = {"caller": proxy.aor("alice")}
    scenario = "reg_uac_auth_call.xml"
    uac = sipp_client(sipps, scenario, topo.proxy, bob, keys=keys, extra=extra, pause_ms=100)
    ok(proxy, uac, uas)
    assert statuses(uac)[:2] == [407, 200], statuses(uac)
    invites = find(trace(uac), sent=True, method="INVITE")
    assert header_values(invites[-1].text, "proxy-authorization"), invites[-1].text
    # Only the authenticated INVITE was forwarded.
    assert len(find(trace(uas), sent=False, method="INVITE")) == 1


# --- 3. baresip


@pytest.mark.interop
def test_baresip_registers_and_auto_answers(
    start_proxy: StartProxy, topo: Topology, sipps: Sipps, ports: PortAllocator, tmp_path: Path
) -> None:
    if baresip_path() is None:
        pytest.skip("baresip is not installed (Debian package baresip-core)")
    # baresip 1.0 (libre) gives up with ENOSYS on a challenge whose algorithm is not MD5,
    # even when an MD5 challenge comes first, so this proxy offers MD5 only.
    proxy = start_proxy(algorithms=("MD5",))
    account = (
        f"<sip:carol@{HOST}:{topo.proxy};transport=udp>;auth_pass={PASSWORDS['carol']}"
        ";regint=60;audio_codecs=PCMU;answermode=auto"
    )
    ua = Baresip(tmp_path / "baresip", ports.take(), ports.take(), account)
    try:
        ua.start()
        ua.wait_registered(8)
        uac = foreign_call(sipps, proxy, "carol", pause_ms=500)
        ok(proxy, uac)
        ua.wait_event("CALL_CLOSED", 5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{ua.report()}\n{proxy.describe()}") from None
    finally:
        ua.stop()
    kinds = [e.get("type") for e in ua.events]
    assert "CALL_ESTABLISHED" in kinds, kinds
    sip = ua.output()
    assert "401 Unauthorized" in sip and "Authorization: Digest" in sip, ua.report()
    answer = oks(uac)[0]
    assert "c=IN IP4 127.0.0.1" in answer.text, f"media off loopback:\n{answer.text}"


# --- 4. two devices, parallel fork


@pytest.mark.interop
def test_two_devices_ring_in_parallel_loser_gets_cancel(
    proxy: RegistrarProxy, topo: Topology, sipps: Sipps
) -> None:
    register(sipps, proxy, "dave", topo.fork_a)
    register(sipps, proxy, "dave", topo.fork_b)
    # fork_a answers after 500 ms; fork_b only rings and must see CANCEL, answer 487 and get
    # the ACK (RFC 3261 §16.7 step 10); SIPp fails the loser otherwise.
    winner = sipps.uas("uas_call.xml", topo.fork_a, pause_ms=500)
    loser = sipps.uas("uas_cancel.xml", topo.fork_b)
    uac = foreign_call(sipps, proxy, "dave")
    ok(proxy, uac, winner, loser)
    assert statuses(uac)[:1] == [200], statuses(uac)
    assert find(trace(loser), sent=False, method="CANCEL"), "the losing device got no CANCEL"


# --- 5. restart


@pytest.mark.interop
def test_bindings_survive_a_restart(proxy: RegistrarProxy, topo: Topology, sipps: Sipps) -> None:
    register(sipps, proxy, "bob", topo.uas)
    proxy.stop()
    proxy.start()  # same state_dir: location.db is read back
    uas = sipps.uas("uas_call.xml", topo.uas)
    ok(proxy, foreign_call(sipps, proxy, "bob"), uas)


@pytest.mark.interop
def test_retransmitted_register_gets_the_same_answer(proxy: RegistrarProxy) -> None:
    # RFC 3261 §17.2.2: a retransmission of an answered REGISTER gets the same final
    # response again (sipedge keeps the answer, not a transaction), not a fresh 401 for a
    # reused nonce count, and the registrar does not run it twice.
    client = RawRegistrar(proxy.topo.proxy)
    try:
        _, second = client.attempt("alice", PASSWORDS["alice"])
        assert second.status == 200, second
        answered = client.last_reply
        for _ in range(2):
            assert client.resend() == answered
        # A new REGISTER with the same nonce count is a replay, not a retransmission.
        data, branch = client.last
        replay = data.replace(branch.encode(), b"z9hG4bK-replayed-branch")
        client.last = (replay, "z9hG4bK-replayed-branch")
        assert client.resend().startswith(b"SIP/2.0 401 ")
    finally:
        client.close()


# --- 6. no user enumeration


def shape(reply: Reply, user: str) -> tuple[object, ...]:
    """A reply with what legitimately differs masked: nonce, tags, Via, Call-ID, the user."""
    headers = []
    for name, value in reply.headers:
        low = name.lower()
        if low in ("via", "call-id"):
            value = "*"
        value = re.sub(r"tag=[^;>\s]+", "tag=*", value.replace(user, "USER"))
        value = re.sub(r'nonce="[^"]*"', 'nonce="*"', value)
        headers.append((name, value))
    challenges = tuple(
        tuple((n, q) for n, _, q in auth_params(v)) for v in reply.values("WWW-Authenticate")
    )
    return reply.status, reply.reason, tuple(headers), challenges


@pytest.mark.interop
def test_unknown_user_and_wrong_password_look_the_same(proxy: RegistrarProxy) -> None:
    # RFC 3261 §26.3.2.4 / RFC 7616 §5.9: without credentials and with wrong ones, an
    # unknown user and a known user with a wrong password must get the same answer.
    client = RawRegistrar(proxy.topo.proxy)
    unknown: list[tuple[Reply, Reply]] = []
    wrong: list[tuple[Reply, Reply]] = []
    try:
        for _ in range(3):  # warm-up, not measured
            client.attempt("nobody", "x")
            client.attempt("alice", "x")
        for i in range(30):
            pair = [("nobody", "guess", unknown), ("alice", "not-alices", wrong)]
            for user, password, out in pair if i % 2 else pair[::-1]:
                out.append(client.attempt(user, password))
    finally:
        client.close()
    for step in (0, 1):  # the first REGISTER, then the one with wrong credentials
        unknown_shapes = {shape(r[step], "nobody") for r in unknown}
        wrong_shapes = {shape(r[step], "alice") for r in wrong}
        assert len(unknown_shapes) == 1 and unknown_shapes == wrong_shapes, (
            f"step {step}: unknown user {unknown_shapes}\nwrong password {wrong_shapes}\n"
            f"{proxy.describe()}"
        )
    assert unknown[0][1].status == 401, unknown[0][1]
    # A generous bound on a trimmed mean (the 3 slowest of 30 dropped: a scheduling hiccup
    # on a busy box is no timing oracle). Sub-millisecond differences pass; a delay for
    # one kind only (a tarpit, a slow hash skipped for unknown users) would not.
    mean_unknown = trimmed_mean([r for _, r in unknown])
    mean_wrong = trimmed_mean([r for _, r in wrong])
    ratio = max(mean_unknown, mean_wrong) / min(mean_unknown, mean_wrong)
    assert ratio < 3.0, (
        f"mean RTT unknown user {mean_unknown * 1e3:.2f} ms, "
        f"wrong password {mean_wrong * 1e3:.2f} ms"
    )


def trimmed_mean(replies: list[Reply], drop: int = 3) -> float:
    return statistics.fmean(sorted(r.rtt for r in replies)[: len(replies) - drop])
