"""NAT detection: which configured tests say a message's sender is behind a NAT.

The tests are OpenSIPS/Kamailio ``nat_uac_test`` flags under readable names:

``contact-private``
    a Contact URI host is in private space (RFC 1918, RFC 6598, 192.0.0.0/24; see
    :mod:`sipedge.nat.addresses`) (OpenSIPS ``private-contact``, flag 1);
``via-address``
    the top Via sent-by is not the source address (``diff-ip-src-via``, 2) -- requests only;
``via-port``
    the top Via sent-by port is not the source port (``diff-port-src-via``, 16) -- requests
    over UDP only, since a stream client always sends from an ephemeral port;
``sdp-private``
    an SDP ``c=`` address is in private space (``private-sdp``, 8);
``sdp-address``
    an SDP ``c=`` address is not the source address (Kamailio 256);
``ws``
    the message came over WebSocket (Kamailio 64): a browser is always treated as NATed.

Everything here is pure: a message and the flow it came on go in, the names of the tests
that fired come out. Malformed parts make a test not fire (the proxy answers them 400
elsewhere), they never raise.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..sip.errors import ParseError
from ..sip.message import Message, Request
from ..sip.sdp import SessionDescription, parse_sdp
from ..transport.base import Flow
from .addresses import is_private, same_ip

NAT_TESTS = ("contact-private", "via-address", "via-port", "sdp-private", "sdp-address", "ws")
#: What an operator of Kamailio would configure: nat_uac_test(19) plus WebSocket.
DEFAULT_TESTS = ("contact-private", "via-address", "via-port", "ws")

_DEFAULT_PORTS = {"UDP": 5060, "TCP": 5060, "TLS": 5061, "WS": 80, "WSS": 443}


def detect(msg: Message, flow: Flow, tests: Iterable[str] = DEFAULT_TESTS) -> frozenset[str]:
    """The names of the ``tests`` that fire for ``msg`` received on ``flow``.

    Via tests run on requests only (a response's top Via is our own).
    """
    fired = set()
    for test in tests:
        if _TESTS[test](msg, flow):
            fired.add(test)
    return frozenset(fired)


def contact_private(msg: Message, flow: Flow) -> bool:
    """A Contact URI host is a private address."""
    try:
        contacts = msg.contacts
    except ParseError:
        return False
    return contacts != "*" and any(is_private(c.uri.host) for c in contacts)


def via_address(msg: Message, flow: Flow) -> bool:
    """The top Via sent-by host is not the source IP (a host name counts as different)."""
    if not isinstance(msg, Request) or not msg.vias:
        return False
    return not same_ip(msg.vias[0].host, flow.remote[0])


def via_port(msg: Message, flow: Flow) -> bool:
    """The top Via sent-by port (or its transport's default) is not the UDP source port."""
    if not isinstance(msg, Request) or not msg.vias or flow.transport != "udp":
        return False
    via = msg.vias[0]
    port = via.port if via.port is not None else _DEFAULT_PORTS.get(via.transport, 5060)
    return port != flow.remote[1]


def sdp_private(msg: Message, flow: Flow) -> bool:
    """An SDP connection address is a private address."""
    return any(is_private(addr) for addr in sdp_addresses(msg))


def sdp_address(msg: Message, flow: Flow) -> bool:
    """An SDP connection address (other than a hold address) is not the source IP."""
    return any(
        not same_ip(addr, flow.remote[0]) for addr in sdp_addresses(msg) if not is_null(addr)
    )


def ws(msg: Message, flow: Flow) -> bool:
    """The message came over WebSocket (RFC 7118): always behind a NAT."""
    return flow.transport in ("ws", "wss")


def sdp_of(msg: Message) -> SessionDescription | None:
    """The message's SDP body, or None when there is none or it does not parse."""
    if not msg.body or msg.content_type != "application/sdp":
        return None
    try:
        return parse_sdp(msg.body)
    except ParseError:
        return None


def sdp_addresses(msg: Message) -> list[str]:
    """Every ``c=`` address of the message's SDP body (session and media level)."""
    sdp = sdp_of(msg)
    if sdp is None:
        return []
    out = []
    for ln in sdp.all_lines():
        if ln.kind == "c":
            parts = ln.value.split()
            if len(parts) == 3:
                out.append(parts[2].split("/", 1)[0])
    return out


def is_null(address: str) -> bool:
    """Whether ``address`` is an RFC 3264 §8.4 hold address (0.0.0.0 or ::)."""
    return address in ("0.0.0.0", "::")


_TESTS = {
    "contact-private": contact_private,
    "via-address": via_address,
    "via-port": via_port,
    "sdp-private": sdp_private,
    "sdp-address": sdp_address,
    "ws": ws,
}
