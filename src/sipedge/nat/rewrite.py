"""Header rewrites for NATed clients: Contact (destructive mode), ``received``, Path.

* :func:`rewrite_contacts` is OpenSIPS/Kamailio ``fix_nated_contact``: every Contact URI
  gets the source address and port of the message. It is destructive (the peer sees an
  address the UA never wrote), for peers that do not record-route; the default mode keeps
  the Contact and carries the flow in our Record-Route instead (:mod:`sipedge.nat.policy`).
* :func:`received_uri` is the ``received`` value of ``fix_nated_register``: the source as a
  SIP URI, reported on the contacts of a 200 to REGISTER.
* :func:`path_value` is the Path entry (RFC 3327 §5.2) an edge proxy adds to a REGISTER it
  relays to a registrar: our address with a flow token in the user part.
"""

from __future__ import annotations

from ..proxy.routing import Interface
from ..sip.errors import ParseError
from ..sip.hdr.nameaddr import parse_name_addr
from ..sip.message import Message
from ..transport.base import Flow


def host_text(ip: str) -> str:
    """An IP literal as a URI host (IPv6 in brackets, RFC 3261 §25.1)."""
    return f"[{ip}]" if ":" in ip and not ip.startswith("[") else ip


def rewrite_contacts(msg: Message, flow: Flow) -> bool:
    """Point every Contact URI of ``msg`` at the source of ``flow`` (host and port only;
    user, parameters and header parameters stay). Returns whether anything changed.

    All Contact fields are written back as one field in the place of the first. A Contact
    that does not parse, or ``*``, leaves the message untouched.
    """
    try:
        values = msg.header_list("Contact")
        parsed = [parse_name_addr(v) for v in values]
    except ParseError:
        return False
    host, port = host_text(flow.remote[0]), flow.remote[1]
    out = []
    changed = False
    for value, na in zip(values, parsed, strict=True):
        if not na.uri.is_sip:
            out.append(value)
            continue
        if na.uri.host.lower() != host.lower() or na.uri.port != port:
            na.uri.host, na.uri.port = host, port
            changed = True
        out.append(str(na))
    if changed:
        msg.set_header("Contact", ", ".join(out))
    return changed


def received_uri(flow: Flow) -> str:
    """``sip:ip:port`` of the flow's source, with ``;transport=`` unless it is UDP."""
    uri = f"sip:{host_text(flow.remote[0])}:{flow.remote[1]}"
    return uri if flow.transport == "udp" else f"{uri};transport={flow.transport}"


def path_value(token: str, host: str, port: int, transport: str) -> str:
    """A Path value naming us at ``host:port`` over ``transport``, ``token`` as the user
    (loose routing, RFC 3327 §4 and RFC 3261 §19.1.1)."""
    return Interface(transport.lower(), host, port).rr_uri(user=token)
