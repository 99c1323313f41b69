"""RFC 4475 torture messages sent to the running proxy over UDP (no SIPp).

All 49 messages go out at once, each from its own socket (see interop_torture for how the
routing information is aimed at loopback). The answer expected from a proxy is listed per
message below, with the RFC 4475 section; "forward" means the request reaches the next
hop (a sink) and the sink's 488 comes back through the proxy. Choices where the RFC leaves
room follow tests/sip/test_rfc4475.py. Afterwards a normal SIPp call must still work.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from interop_net import HOST
from interop_proxy import ProxyProcess, Topology
from interop_sipp import Sipps, expect_success
from interop_torture import (
    Probe,
    Sink,
    SinkServer,
    aim_request_uris,
    aim_routes,
    aim_top_via,
    collect,
    is_request,
    open_probe,
    split_head,
    status_of,
    unfolded_headers,
)

DATA = Path(__file__).parent.parent / "data" / "rfc4475"


@dataclass(frozen=True)
class Expect:
    """What the proxy does with one torture message."""

    section: str  # RFC 4475 section
    outcome: str  # "forward" | "status" | "silent"
    status: int = 0


def fwd(section: str) -> Expect:
    return Expect(section, "forward")


def answer(status: int, section: str) -> Expect:
    return Expect(section, "status", status)


def silent(section: str) -> Expect:
    return Expect(section, "silent")


EXPECT: dict[str, Expect] = {
    # 3.1.1 Valid messages. A proxy routes on the Request-URI / Route only, so each valid
    # request is forwarded whatever its oddities.
    "wsinv": fwd("3.1.1.1"),  # short tortuous INVITE (in-dialog: follows its loose Route)
    "intmeth": fwd("3.1.1.2"),  # unusual but valid characters, unknown method
    "esc01": fwd("3.1.1.3"),  # valid %-escapes in URIs
    "escnull": fwd("3.1.1.4"),  # escaped NULs in URIs
    "esc02": fwd("3.1.1.5"),  # % is no escape in a method name: an unknown method
    "lwsdisp": fwd("3.1.1.6"),  # no LWS between display name and <
    "longreq": fwd("3.1.1.7"),  # long values, 34 Vias (> 1300 bytes: may go out over TCP)
    "dblreq": fwd("3.1.1.8"),  # a REGISTER; the INVITE after it in the datagram is ignored
    "semiuri": fwd("3.1.1.9"),  # ; in the user part of the Request-URI
    "transports": fwd("3.1.1.10"),  # unknown transport tokens in lower Vias
    "mpart01": fwd("3.1.1.11"),  # multipart body, strict-route Route header
    # Valid responses matching no transaction, whose top Via is not the proxy's: discarded
    # (RFC 3261 18.1.2), so nothing comes back.
    "unreason": silent("3.1.1.12"),  # UTF-8 reason phrase
    "noreason": silent("3.1.1.13"),  # empty reason phrase
    # 3.1.2 Invalid messages: requests get 400 (505 for a bad version); responses are dropped.
    "badinv01": answer(400, "3.1.2.1"),  # extraneous separators in the top Via
    "clerr": answer(400, "3.1.2.2"),  # Content-Length larger than the datagram
    "ncl": answer(400, "3.1.2.3"),  # negative Content-Length
    "scalar02": answer(400, "3.1.2.4"),  # overlarge CSeq / Max-Forwards / Expires
    "scalarlg": silent("3.1.2.5"),  # a response with overlarge scalars
    "quotbal": answer(400, "3.1.2.6"),  # unterminated quoted string
    "ltgtruri": answer(400, "3.1.2.7"),  # <> around the Request-URI
    "lwsruri": answer(400, "3.1.2.8"),  # LWS inside the Request-URI
    "lwsstart": answer(400, "3.1.2.9"),  # several SP between request-line elements
    "trws": answer(400, "3.1.2.10"),  # SP after SIP/2.0 in the request line
    "escruri": answer(400, "3.1.2.11"),  # escaped headers in a SIP Request-URI
    "baddate": fwd("3.1.2.12"),  # bad Date time zone: Date is not a proxy's business
    "regbadct": fwd("3.1.2.13"),  # REGISTER Contact is the registrar's business
    "badaspec": answer(400, "3.1.2.14"),  # spaces inside an addr-spec
    "baddn": answer(400, "3.1.2.15"),  # non-token characters in an unquoted display name
    "badvers": answer(505, "3.1.2.16"),  # SIP/7.0 (RFC 3261 21.5.6)
    "mismatch01": answer(400, "3.1.2.17"),  # method and CSeq method differ
    "mismatch02": answer(400, "3.1.2.18"),  # unknown method, CSeq method differs
    "bigcode": silent("3.1.2.19"),  # a response with a status code > 699
    # 3.2 Transaction layer
    "badbranch": fwd("3.2.1"),  # branch is the bare magic cookie: still a valid request
    # 3.3 Application layer
    "insuf": answer(400, "3.3.1"),  # Call-ID, From and To missing
    "unkscm": answer(416, "3.3.2"),  # unknown Request-URI scheme
    "novelsc": answer(416, "3.3.3"),  # soap.beep Request-URI: a scheme a proxy cannot route
    "unksm2": fwd("3.3.4"),  # unknown schemes in To/From/Contact only
    "bext01": answer(420, "3.3.5"),  # Proxy-Require options unknown (RFC 3261 16.3 step 5)
    "invut": fwd("3.3.6"),  # unknown Content-Type: the UAS's business
    "regaut01": fwd("3.3.7"),  # unknown Authorization scheme, not for the proxy
    "multi01": answer(400, "3.3.8"),  # several values in single-value headers
    "mcl01": answer(400, "3.3.9"),  # two Content-Length headers
    "bcast": silent("3.3.10"),  # a 200 with a broadcast address in a lower Via
    "zeromf": answer(483, "3.3.11"),  # Max-Forwards 0, not addressed to the proxy
    "cparam01": fwd("3.3.12"),  # REGISTER with a Contact header parameter
    "cparam02": fwd("3.3.13"),  # REGISTER with a Contact URI parameter
    "regescrt": fwd("3.3.14"),  # REGISTER with an escaped header in the Contact URI
    "sdp01": fwd("3.3.15"),  # Accept lists an unknown type only: the UAS answers 406
    # 3.4 Backward compatibility
    "inv2543": fwd("3.4.1"),  # RFC 2543 INVITE: no branch, no tags, no Max-Forwards
}


# Rows on which the development stand-in (Kamailio without its sanity module, see
# devpeer/) differs from the table: it drops, forwards or answers them otherwise. They are
# left out only when SIPEDGE_TEST_PROXY=kamailio, so the harness itself stays exercised.
KAMAILIO_DIFFERS = frozenset(
    [
        "wsinv",
        "intmeth",
        "esc02",
        "badinv01",
        "clerr",
        "ncl",
        "scalar02",
        "quotbal",
        "ltgtruri",
        "lwsruri",
        "lwsstart",
        "trws",
        "escruri",
        "badaspec",
        "baddn",
        "badvers",
        "mismatch01",
        "mismatch02",
        "insuf",
        "unkscm",
        "novelsc",
        "bext01",
        "multi01",
        "mcl01",
    ]
)


def load(name: str) -> bytes:
    return (DATA / f"{name}.dat").read_bytes()


def prepare(data: bytes, probe: Probe, sink: Sink | None) -> bytes:
    """The message as sent: routing aimed at the sink, answers aimed at the probe."""
    request = is_request(data)
    if sink is not None:
        data = aim_routes(aim_request_uris(data, sink.port), sink.port)
    return aim_top_via(data, probe.sock.getsockname()[1], request)


def header(message: bytes, name: str) -> str:
    """The comma-joined values of one header of a message, lower case ("" if absent)."""
    values = []
    for line in unfolded_headers(split_head(message)[0]):
        hname, _, value = line.partition(b":")
        if hname.strip().lower() == name.encode():
            values.append(value.strip().decode("latin-1"))
    return ", ".join(values).lower()


def judge(name: str, exp: Expect, probe: Probe, sink: Sink | None) -> str | None:
    """None if the proxy did what `exp` says, else a description of what it did."""
    final = probe.final()
    forwarded = sorted(sink.methods()) if sink else []
    seen = f"answers {probe.statuses()}, forwarded {forwarded}"
    method = load(name).split(b" ", 1)[0].decode("latin-1")
    if exp.outcome == "silent":
        ok = not probe.answers and not forwarded
    elif exp.outcome == "status":
        ok = final is not None and status_of(final) == exp.status and not forwarded
        if ok and name == "bext01":
            assert final is not None
            # RFC 3261 8.2.2.3 / 16.3: list the unknown Proxy-Require options, and not the
            # Require ones (those are for the UAS).
            unsupported = header(final, "unsupported")
            ok = "noproxiessupportthis" in unsupported and "nothingsupportsthis" not in unsupported
            seen += f", Unsupported: {unsupported!r}"
    else:
        relayed = final is not None and f"x-interop-sink: {name}".encode() in final.lower()
        ok = forwarded == [method] and relayed
    if ok:
        return None
    return f"{name} (RFC 4475 {exp.section}): expected {exp.outcome} {exp.status or ''}: {seen}"


def settled(names: list[str], probes: dict[str, Probe], sinks: dict[str, Sink]) -> bool:
    """Every message expecting an answer or a forward has its final answer."""
    for name in names:
        exp = EXPECT[name]
        if exp.outcome != "silent" and probes[name].final() is None:
            return False
        if exp.outcome == "forward" and not sinks[name].received:
            return False
    return True


@pytest.mark.interop
def test_rfc4475_messages_over_udp(proxy: ProxyProcess, topo: Topology, sipps: Sipps) -> None:
    assert sorted(EXPECT) == sorted(p.stem for p in DATA.glob("*.dat"))
    assert len(EXPECT) == 49
    skip = KAMAILIO_DIFFERS if proxy.kind == "kamailio" else frozenset()
    names = [n for n in EXPECT if n not in skip]
    server = SinkServer()
    probes = {name: open_probe(name) for name in EXPECT}
    try:
        sinks = {n: server.add(n) for n in EXPECT if is_request(load(n))}
        server.start()
        for name, probe in probes.items():
            probe.sock.sendto(prepare(load(name), probe, sinks.get(name)), (HOST, topo.proxy))
        collect(list(probes.values()), lambda: settled(names, probes, sinks), 0.8, 3.0)
        faults = [judge(n, EXPECT[n], probes[n], sinks.get(n)) for n in names]
    finally:
        server.close()
        for probe in probes.values():
            probe.sock.close()
    wrong = [f for f in faults if f]
    assert not wrong, "\n".join(wrong) + "\n" + proxy.describe()

    # The proxy is still in service.
    uas = sipps.uas("uas_call.xml", topo.uas)
    uac = sipps.uac("uac_call.xml", topo.proxy, f"sip:uas@{HOST}:{topo.uas}")
    expect_success(proxy.describe(), uac, uas)
    assert "Traceback" not in proxy.stderr_text(), proxy.describe()
