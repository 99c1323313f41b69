"""Call control beside the §16 proxy: dialog tracking and the media relay.

The proxy core tells :class:`CallControl` what happens to INVITE transactions and
in-dialog requests; it keeps the :class:`~sipedge.dialog.DialogTracker` up to date and,
when a :class:`~sipedge.media.session.MediaSession` is configured, returns the relay work
(offer, answer) the proxy must await before a message goes on. Which side offers decides
the tags rtpengine gets (see :mod:`sipedge.media.session`); the flags follow from the leg
the SDP goes to: a WebSocket client gets WebRTC media, everything else plain RTP.

Media is deleted whenever a call ends, whichever way: BYE, CANCEL, a final failure, the
maximum call duration, the dialog timeout or an operator's request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any

from ..dialog import Dialog, DialogState, DialogTracker, Leg
from ..media.session import MediaSession, has_sdp
from ..sip.errors import ParseError
from ..sip.message import Message, Request, Response
from ..transport.base import Flow
from .context import Branch, ResponseContext
from .routing import Identity

log = logging.getLogger("sipedge.proxy")

OFFER_METHODS = frozenset({"INVITE", "UPDATE"})


def is_webrtc(flow: Flow | None) -> bool:
    """Whether a leg on ``flow`` is a browser (RFC 7118 WebSocket transport)."""
    return flow is not None and flow.transport in ("ws", "wss")


class CallControl:
    """Dialog bookkeeping and relay work for the proxy (see the module text)."""

    def __init__(
        self,
        tracker: DialogTracker,
        identity: Identity,
        clock: Callable[[], float],
        *,
        media: MediaSession | None = None,
        send_bye: Callable[[Dialog, str], None] | None = None,
    ) -> None:
        self.tracker = tracker
        self.identity = identity
        self.clock = clock
        self.media = media
        self.send_bye = send_bye
        #: Dialog key -> tag of the side whose 2xx carried an offer (answer due in ACK).
        self._late: dict[str, str] = {}

    # ------------------------------------------------------------------ INVITE life
    def invite_relayed(self, rctx: ResponseContext) -> None:
        """An initial INVITE is about to be forwarded: open its dialog record."""
        req = rctx.request
        if req.method != "INVITE" or req.to_tag is not None or not req.from_tag:
            return
        flow = rctx.ctx.flow
        caller = Leg(
            uri=req.header("From") or "",
            tag=req.from_tag,
            target=_contact(req),
            flow=flow,
            cseq=req.cseq.number,
            webrtc=is_webrtc(flow),
        )
        dialog = Dialog(
            call_id=req.call_id,
            caller=caller,
            created=self.clock(),
            request_uri=req.uri_text,
        )
        self.tracker.started(dialog, self.clock())

    def request_seen(self, req: Request) -> None:
        """An in-dialog request arrived: BYE ends the call; others raise the CSeq."""
        if req.to_tag is None or req.method in ("ACK", "CANCEL"):
            return
        dialog = self.tracker.find(req.call_id, req.from_tag, req.to_tag)
        if dialog is None:
            return
        if req.method == "BYE":
            self._finish(dialog.key, "bye")
            return
        from_caller = req.from_tag == dialog.caller.tag
        leg = dialog.caller if from_caller else dialog.callee
        if req.cseq.number > leg.cseq:
            new = replace(leg, cseq=req.cseq.number)
            dialog = dialog.with_(**{"caller" if from_caller else "callee": new})
            self.tracker.update(dialog)

    def cancelled(self, rctx: ResponseContext) -> None:
        """The caller cancelled the INVITE."""
        self._end_initial(rctx, "cancel")

    def failed(self, rctx: ResponseContext, status: int) -> None:
        """The INVITE got a final failure upstream."""
        self._end_initial(rctx, f"failed {status}")

    def _end_initial(self, rctx: ResponseContext, reason: str) -> None:
        req = rctx.request
        if req.method == "INVITE" and req.to_tag is None and req.from_tag:
            key = f"{req.call_id};{req.from_tag}"
            d = self.tracker.get(key)
            if d is not None and d.state is not DialogState.CONFIRMED:
                self._finish(key, reason)

    def end(self, key: str, reason: str) -> bool:
        """End a confirmed call now: BYE both ways, media deleted (operator or timer)."""
        d = self.tracker.get(key)
        if d is None or d.state is not DialogState.CONFIRMED:
            return False
        final = self._finish(key, reason)
        if final is not None and self.send_bye is not None:
            self.send_bye(final, reason)
        return final is not None

    def _finish(self, key: str, reason: str) -> Dialog | None:
        final = self.tracker.ended(key, reason, self.clock())
        self._late.pop(key, None)
        if final is not None and final.media and self.media is not None:
            self.media.delete(final.call_id, final.caller.tag)
        return final

    # ------------------------------------------------------------------ timers
    def get_timer(self) -> float | None:
        """The next dialog deadline."""
        return self.tracker.get_timer()

    def handle_timer(self, now: float) -> None:
        """Dialogs past their deadline: hang up (maximum duration) or forget them."""
        for expiry in self.tracker.due(now):
            d = expiry.dialog
            self._late.pop(d.key, None)
            if d.media and self.media is not None:
                self.media.delete(d.call_id, d.caller.tag)
            if expiry.hangup and self.send_bye is not None:
                log.info("call %s: %s reached, hanging up", d.call_id, d.end_reason)
                self.send_bye(d, d.end_reason)

    # ------------------------------------------------------------------ media
    def offer_work(
        self, rctx: ResponseContext, branch: Branch, out_flow: Flow
    ) -> Coroutine[Any, Any, None] | None:
        """The relay offer a branch needs before it is sent, if any."""
        req = branch.request
        if self.media is None or branch.media_offered or req.method not in OFFER_METHODS:
            return None
        if branch.target.media_set == "off":
            return None
        if not has_sdp(req) or not req.from_tag:
            return None
        if req.to_tag is not None:
            d = self.tracker.find(req.call_id, req.from_tag, req.to_tag)
            if d is None or not d.media:
                return None
        branch.media_offered = True
        return self._offer(rctx, branch, out_flow)

    async def _offer(self, rctx: ResponseContext, branch: Branch, out_flow: Flow) -> None:
        req = branch.request
        assert self.media is not None and req.from_tag
        await self.media.offer(
            req,
            from_tag=req.from_tag,
            to_webrtc=is_webrtc(out_flow),
            source_ip=rctx.ctx.flow.remote[0],
            via_branch=branch.via_branch,
            node_set=branch.target.media_set or None,
        )
        self._mark_media(req.call_id, req.from_tag, req.to_tag)

    def response_work(
        self, rctx: ResponseContext, branch: Branch, resp: Response
    ) -> Coroutine[Any, Any, None] | None:
        """Track the dialog state of an INVITE response and return its relay work."""
        if resp.cseq.method == "INVITE" and rctx.request.to_tag is None:
            self._track(rctx, branch, resp)
        if self.media is None or not (100 < resp.status < 300) or not has_sdp(resp):
            return None
        if resp.cseq.method not in OFFER_METHODS or not resp.from_tag or not resp.to_tag:
            return None
        to_webrtc = is_webrtc(rctx.ctx.flow)
        source = branch.flow.remote[0] if branch.flow is not None else None
        if branch.media_offered:
            return self.media.answer(
                resp,
                from_tag=resp.from_tag,
                to_tag=resp.to_tag,
                to_webrtc=to_webrtc,
                source_ip=source,
                via_branch=branch.via_branch,
            )
        late = resp.status >= 200 and not has_sdp(rctx.request)
        if late and branch.target.media_set != "off" and self._media_call(rctx):
            return self._late_offer(resp, to_webrtc, source)
        return None

    async def _late_offer(self, resp: Response, to_webrtc: bool, source: str | None) -> None:
        """RFC 3264 §5 with the offer in the 2xx: its SDP is an offer from the callee."""
        assert self.media is not None and resp.to_tag and resp.from_tag
        await self.media.offer(resp, from_tag=resp.to_tag, to_webrtc=to_webrtc, source_ip=source)
        self._late[f"{resp.call_id};{resp.from_tag}"] = resp.to_tag
        self._mark_media(resp.call_id, resp.from_tag, resp.to_tag)

    def ack_work(self, ack: Request, flow: Flow) -> Coroutine[Any, Any, None] | None:
        """The answer an ACK carries for an offer made in a 2xx (late offer)."""
        if self.media is None or not has_sdp(ack) or not ack.to_tag or not ack.from_tag:
            return None
        d = self.tracker.find(ack.call_id, ack.from_tag, ack.to_tag)
        if d is None or self._late.pop(d.key, None) is None:
            return None
        offerer = d.callee if ack.from_tag == d.caller.tag else d.caller
        return self.media.answer(
            ack,
            from_tag=ack.to_tag,
            to_tag=ack.from_tag,
            to_webrtc=offerer.webrtc,
            source_ip=flow.remote[0],
        )

    def _media_call(self, rctx: ResponseContext) -> bool:
        req = rctx.request
        if req.to_tag is None:
            return req.method == "INVITE"
        d = self.tracker.find(req.call_id, req.from_tag, req.to_tag)
        return d is not None and d.media

    def _mark_media(self, call_id: str, tag_a: str | None, tag_b: str | None) -> None:
        d = self.tracker.find(call_id, tag_a, tag_b)
        if d is not None and self.media is not None:
            node = self.media.relay.node_of(call_id)
            if not d.media or d.relay_node != node:
                self.tracker.update(d.with_(media=True, relay_node=node))

    # ------------------------------------------------------------------ dialog state
    def _track(self, rctx: ResponseContext, branch: Branch, resp: Response) -> None:
        if resp.status <= 100 or resp.status >= 300 or not resp.to_tag:
            return
        key = f"{resp.call_id};{resp.from_tag}"
        d = self.tracker.get(key)
        if d is None:
            return
        try:
            callee, caller_route = self._callee_leg(branch, resp)
        except ParseError:
            return
        if resp.status < 200:
            self.tracker.early(key, callee)
            return
        if d.state is not DialogState.CONFIRMED:
            caller = replace(d.caller, route=caller_route)
            self.tracker.update(d.with_(caller=caller))
            self.tracker.confirmed(key, callee, self.clock())

    def _callee_leg(self, branch: Branch, resp: Response) -> tuple[Leg, tuple[str, ...]]:
        """The callee side from a response, and the route back to the caller (§12.1.2)."""
        rrs = [str(rr) for rr in resp.record_routes]
        ours = [i for i, rr in enumerate(resp.record_routes) if self._is_ours(rr.uri)]
        above = rrs[: ours[0]] if ours else []
        below = tuple(rrs[ours[-1] + 1 :]) if ours else ()
        callee = Leg(
            uri=resp.header("To") or "",
            tag=resp.to_tag or "",
            target=_contact(resp),
            route=tuple(reversed(above)),
            flow=branch.flow,
            cseq=0,
            webrtc=is_webrtc(branch.flow),
        )
        return callee, below

    def _is_ours(self, uri: Any) -> bool:
        return self.identity.interface_for(uri) is not None


def _contact(msg: Message) -> str:
    try:
        contacts = msg.contacts
    except ParseError:
        return ""
    if contacts == "*" or not contacts:
        return ""
    return str(contacts[0].uri)
