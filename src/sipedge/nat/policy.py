"""What the proxy does for NATed clients (the ``[nat]`` section), in one object.

:class:`NatTraversal` is called by the proxy core at three points, and by the default
router for REGISTER:

* a request arrives (:meth:`~NatTraversal.on_request`): in ``rewrite`` mode the Contact of
  a NATed sender is pointed at its source (``fix_nated_contact``); with ``fix_sdp`` its
  SDP too (``fix_nated_sdp``);
* Record-Route is built (:meth:`~NatTraversal.wants_token`): in the default ``flow-token``
  mode the entry facing a NATed UDP sender carries a signed token of its flow, so the
  other side's in-dialog requests reach it through its NAT binding while its Contact
  stays as sent (the non-destructive alias of Kamailio, signed so that it cannot be
  pointed at an arbitrary host);
* a response comes back from a callee (:meth:`~NatTraversal.on_response`): the same for
  the callee's side (our Record-Route entry facing it may be rewritten in the response,
  RFC 3261 §16.7 step 4), or its Contact in ``rewrite`` mode, and its SDP;
* a REGISTER is saved (:meth:`~NatTraversal.signalling_nated`: the binding then goes to the
  flow) or relayed to another registrar (:meth:`~NatTraversal.add_path`: a Path entry
  carrying the flow token, RFC 3327).

Detection uses the configured tests (:mod:`sipedge.nat.detect`). The signalling decisions
(token, binding, Path) use only the Contact, Via and WebSocket tests: SDP tests say
something about media, and SDP fixing changes what they would see.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from ..proxy.flowtoken import FlowTokens
from ..sip.errors import ParseError, ProtocolError
from ..sip.hdr.nameaddr import parse_name_addr
from ..sip.message import Message, Request, Response
from ..sip.uri import uri_equal
from ..transport.base import Flow
from .detect import DEFAULT_TESTS, NAT_TESTS, detect
from .rewrite import path_value, rewrite_contacts
from .sdp import fix_sdp

log = logging.getLogger("sipedge.nat")

SIGNALLING_TESTS = frozenset({"contact-private", "via-address", "via-port", "ws"})
#: Responses whose Contact and Record-Route shape a dialog (RFC 3261 §12.1).
_DIALOG_STATUSES = range(101, 300)
_NEVER = frozenset({"REGISTER", "ACK", "CANCEL"})

ContactMode = Literal["flow-token", "rewrite"]


@dataclass(frozen=True, slots=True)
class NatSettings:
    """The NAT policy: detection ``tests``, how dialogs reach a NATed UA (``contact``:
    ``flow-token`` or ``rewrite``) and SDP fixing (``fix_sdp``, ``fix_sdp_origin``)."""

    tests: tuple[str, ...] = DEFAULT_TESTS
    contact: ContactMode = "flow-token"
    fix_sdp: bool = False
    fix_sdp_origin: bool = False

    def __post_init__(self) -> None:
        unknown = [t for t in self.tests if t not in NAT_TESTS]
        if unknown:
            raise ProtocolError(f"unknown NAT tests {unknown}; known: {', '.join(NAT_TESTS)}")


class NatTraversal:
    """The NAT policy applied to messages (see the module docstring)."""

    def __init__(self, settings: NatSettings, tokens: FlowTokens) -> None:
        self.settings = settings
        self.tokens = tokens
        self._signalling = tuple(t for t in settings.tests if t in SIGNALLING_TESTS)

    # ------------------------------------------------------------------ detection
    def nated(self, msg: Message, flow: Flow) -> bool:
        """Whether any configured test fires for ``msg`` received on ``flow``."""
        return bool(detect(msg, flow, self.settings.tests))

    def signalling_nated(self, msg: Message, flow: Flow) -> bool:
        """Whether a configured Contact, Via or WebSocket test fires: the sender can only
        be reached through the flow its message came on."""
        return bool(detect(msg, flow, self._signalling))

    # ------------------------------------------------------------------ requests
    def on_request(self, req: Request, flow: Flow) -> None:
        """Fix a request from a NATed sender before it is routed (after Via fixing).

        REGISTER is never changed here: the registrar keeps the flow instead.
        """
        edits = self.settings.contact == "rewrite" or self.settings.fix_sdp
        if not edits or req.method in _NEVER:
            return
        fired = detect(req, flow, self.settings.tests)  # once: both decisions come from it
        if not fired:
            return
        if self.settings.contact == "rewrite" and fired & SIGNALLING_TESTS:
            rewrite_contacts(req, flow)
        if self.settings.fix_sdp:
            fix_sdp(req, flow.remote[0], origin=self.settings.fix_sdp_origin)

    def wants_token(self, req: Request, flow: Flow) -> bool:
        """Whether our Record-Route entry facing the sender of ``req`` must carry its flow
        token (``flow-token`` mode, a NATed UDP sender; streams always get one)."""
        return (
            self.settings.contact == "flow-token"
            and not flow.is_stream
            and self.signalling_nated(req, flow)
        )

    # ------------------------------------------------------------------ responses
    def on_response(self, resp: Response, branch: Any, recorded: bool) -> None:
        """Fix a response from a NATed callee before it goes upstream.

        ``branch`` is the proxy's branch (its request and client transaction give where
        the request went); ``recorded`` whether we record-routed that request.
        """
        flow = _branch_flow(branch)
        if flow is None or resp.status not in _DIALOG_STATUSES or resp.cseq.method in _NEVER:
            return
        fired = detect(resp, flow, self.settings.tests)  # once: both decisions come from it
        if not fired:
            return
        if fired & SIGNALLING_TESTS:
            if self.settings.contact == "rewrite":
                rewrite_contacts(resp, flow)
            elif recorded:
                self.token_in_record_route(resp, branch.request, flow)
        if self.settings.fix_sdp:
            fix_sdp(resp, flow.remote[0], origin=self.settings.fix_sdp_origin)

    def token_in_record_route(self, resp: Response, sent: Request, flow: Flow) -> bool:
        """Put the token of ``flow`` into our Record-Route entry facing the callee: the top
        entry of ``resp`` when it is the top entry we put on ``sent`` and has no user part
        yet (a downstream proxy that record-routed handles its own side). Whether it did.
        """
        try:
            ours = sent.record_routes
            values = resp.header_list("Record-Route")
            if not ours or not values or ours[0].uri.user is not None:
                return False
            top = parse_name_addr(values[0])
        except ParseError:
            return False
        if not uri_equal(top.uri, ours[0].uri):
            return False
        top.uri.user = self.tokens.encode(flow)
        values[0] = str(top)
        resp.set_header("Record-Route", ", ".join(values))
        return True

    # ------------------------------------------------------------------ REGISTER relayed
    def add_path(self, out: Request, received: Request, flow: Flow) -> bool:
        """Add our Path entry with the flow token to ``out``, a REGISTER relayed to another
        registrar, when its sender (``received`` on ``flow``) is NATed or on a stream.

        The entry names the interface the REGISTER leaves on (our Via on ``out``), so the
        registrar's requests come back to us there, and we send them over the flow. It is
        added once, whatever the UA's Supported says: RFC 3327 §5.2 would have a proxy
        ask for it, but without it a NATed UA is unreachable (Kamailio's
        ``add_path_received`` does the same).
        """
        if not out.vias or not (flow.is_stream or self.signalling_nated(received, flow)):
            return False
        token = self.tokens.encode(flow)
        if any(token in value for value in out.header_list("Path")):
            return False
        via = out.vias[0]
        port = via.port if via.port is not None else 5060
        out.add_header("Path", path_value(token, via.host, port, via.transport), top=True)
        return True


def _branch_flow(branch: Any) -> Flow | None:
    """Where the branch's request went: its client transaction's destination flow."""
    dest = getattr(getattr(branch, "txn", None), "dest", None)
    flow = getattr(dest, "flow", None)
    return flow if isinstance(flow, Flow) else None
