"""Where a request came from and where its responses go: Via fixing (RFC 3261 §18.2)."""

from __future__ import annotations

from ..nat.addresses import is_private, same_ip
from ..sip.message import Request
from ..transport.base import Flow, normalize_ip
from .targets import Dest


def fix_via(req: Request, flow: Flow) -> None:
    """RFC 3261 §18.2.1 and RFC 3581 §4: add received (and fill rport) to the top Via.

    A UDP sender whose sent-by is a private address other than its source is behind a
    NAT: it is answered as if it had asked for rport (Kamailio's ``force_rport``), since
    only the source port of its NAT binding reaches it.
    """
    via = req.vias[0]
    src_ip, src_port = flow.remote
    if (
        via.rport is None
        and flow.transport == "udp"
        and is_private(via.host)
        and not same_ip(via.host, src_ip)
    ):
        via.params.set("rport", None)
    if via.rport is not None:
        via.set_rport(src_port)
        via.set_received(src_ip)
    else:
        try:
            same = normalize_ip(via.host.strip("[]")) == src_ip
        except ValueError:
            same = False
        if same:
            return
        via.set_received(src_ip)
    req.replace_top_via(via)


def response_dest(req: Request, flow: Flow) -> Dest:
    """Where responses to ``req`` go (RFC 3261 §18.2.2, RFC 3581 §4)."""
    via = req.vias[0]
    if flow.transport == "udp" and via.rport is None:
        port = via.port or 5060
        if port != flow.remote[1]:
            return Dest(Flow("udp", flow.local, (flow.remote[0], port)))
    if flow.transport in ("ws", "wss"):
        return Dest(flow)  # RFC 7118 §5: a WebSocket client is never dialled
    return Dest(flow, fallback=(flow.remote[0], via.port or 5060))
