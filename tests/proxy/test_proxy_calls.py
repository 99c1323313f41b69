"""Call control in the proxy: dialog tracking, hang-up by BYE both ways, and the media
relay's offer/answer/delete wired into INVITE, responses, ACK, BYE and CANCEL (with a
recording fake relay; the real rtpengine is exercised in tests/interop)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from sipedge.dialog import DialogState, DialogTracker
from sipedge.dialog.tracker import DialogSettings
from sipedge.media.session import MediaProfiles, MediaSession
from sipedge.proxy.default_router import DefaultRouter, DefaultRouterConfig, StaticRoute
from sipedge.sip.message import Request, Response
from sipedge.sip.uri import parse_uri

from .calls_support import (
    SDP_A,
    SDP_B,
    FakeRelay,
    ack_for,
    body_of,
    bye_from_caller,
    with_sdp,
)
from .harness import Harness, answer, invite


def take_req(h: Harness, method: str) -> tuple[Request, Any]:
    msg, dest = h.take_one(Request, method=method)
    assert isinstance(msg, Request)
    return msg, dest


def take_resp(h: Harness, status: int) -> Response:
    msg, _ = h.take_one(Response, status=status)
    assert isinstance(msg, Response)
    return msg


def call_up(h: Harness, sdp: bool = False) -> tuple[Request, Response]:
    """INVITE, 180, 200 through the proxy; returns the forwarded INVITE and upstream 200."""
    data = invite()
    h.feed(with_sdp(data, SDP_A) if sdp else data)
    take_resp(h, 100)
    fwd, _ = take_req(h, "INVITE")
    h.feed(answer(fwd, 180), remote=("127.0.0.1", 5070))
    take_resp(h, 180)
    ok = answer(fwd, 200)
    h.feed(with_sdp(ok, SDP_B) if sdp else ok, remote=("127.0.0.1", 5070))
    return fwd, take_resp(h, 200)


# ---------------------------------------------------------------- dialog tracking, sync


def test_dialog_goes_early_confirmed_then_ended_by_bye() -> None:
    tracker = DialogTracker()
    h = Harness(dialogs=tracker)
    h.feed(invite())
    fwd, _ = take_req(h, "INVITE")
    assert tracker.get("call-1;a1").state is DialogState.TRYING  # type: ignore[union-attr]
    h.feed(answer(fwd, 180), remote=("127.0.0.1", 5070))
    d = tracker.get("call-1;a1")
    assert d is not None and d.state is DialogState.EARLY and d.callee.tag == "b1"
    h.feed(answer(fwd, 200), remote=("127.0.0.1", 5070))
    d = tracker.get("call-1;a1")
    assert d is not None and d.state is DialogState.CONFIRMED
    assert d.caller.target == "sip:alice@127.0.0.1:5061" and d.caller.cseq == 1
    assert d.callee.target == "sip:bob@127.0.0.1:5070"
    assert d.callee.route == () and d.caller.route == ()  # only our own Record-Route
    ok = take_resp(h, 200)
    h.feed(bye_from_caller(ok))
    assert tracker.get("call-1;a1") is None
    assert tracker.recent[-1].end_reason == "bye" and tracker.counters["ended"] == 1


def test_cancel_and_failure_end_the_record() -> None:
    tracker = DialogTracker()
    h = Harness(dialogs=tracker)
    h.feed(invite())
    fwd, _ = take_req(h, "INVITE")
    h.feed(answer(fwd, 486), remote=("127.0.0.1", 5070))
    assert tracker.get("call-1;a1") is None and tracker.recent[-1].end_reason == "failed 486"
    h.feed(invite(call_id="call-2", branch="z9hG4bKc2"))
    fwd, _ = take_req(h, "INVITE")
    h.feed(answer(fwd, 180), remote=("127.0.0.1", 5070))
    cancel = invite(method="CANCEL", call_id="call-2", branch="z9hG4bKc2")
    h.feed(cancel)
    assert tracker.get("call-2;a1") is None and tracker.recent[-1].end_reason == "cancel"
    assert len(tracker) == 0


def test_max_call_duration_sends_bye_both_ways() -> None:
    tracker = DialogTracker(DialogSettings(max_call_duration=60.0))
    h = Harness(dialogs=tracker)
    _, ok = call_up(h)
    reinvite_cseq = 5  # the caller's later in-dialog request raises its CSeq
    h.take()
    h.feed(bye_from_caller(ok, cseq=reinvite_cseq).replace(b"BYE", b"INFO"))
    h.take()
    h.advance(59.0)
    assert not [m for m, _ in h.take() if isinstance(m, Request) and m.method == "BYE"]
    h.advance(1.5)
    byes = [(m, d) for m, d in h.take() if isinstance(m, Request) and m.method == "BYE"]
    assert len(byes) == 2
    (to_callee, d1), (to_caller, d2) = byes
    assert to_callee.uri_text == "sip:bob@127.0.0.1:5070" and d1.flow.remote == ("127.0.0.1", 5070)
    assert to_callee.from_tag == "a1" and to_callee.to_tag == "b1"
    assert to_callee.cseq.number == reinvite_cseq + 1
    assert to_caller.uri_text == "sip:alice@127.0.0.1:5061" and d2.flow.remote == (
        "127.0.0.1",
        5061,
    )
    assert to_caller.from_tag == "b1" and to_caller.to_tag == "a1"
    assert "max duration" in (to_caller.header("Reason") or "")
    assert to_callee.vias[0].branch.startswith("z9hG4bK") and len(to_callee.vias) == 1
    assert tracker.recent[-1].end_reason == "max duration"


def test_end_dialog_for_operators() -> None:
    tracker = DialogTracker()
    h = Harness(dialogs=tracker)
    assert h.proxy.end_dialog("nope;x") is False
    call_up(h)
    h.take()
    assert h.proxy.end_dialog("call-1;a1", "ended by test") is True
    methods = [m.method for m, _ in h.take() if isinstance(m, Request)]
    assert methods == ["BYE", "BYE"]
    assert h.proxy.end_dialog("call-1;a1") is False  # already over


def test_unanswered_record_is_dropped_after_the_setup_timeout() -> None:
    tracker = DialogTracker(DialogSettings(setup_timeout=30.0))
    h = Harness(dialogs=tracker)
    h.feed(invite())
    h.advance(31.0)
    assert len(tracker) == 0 and tracker.recent[-1].end_reason == "timeout"


# ---------------------------------------------------------------- media, with a loop


def run(
    body: Callable[[Harness, FakeRelay], Coroutine[Any, Any, None]],
    relay: FakeRelay | None = None,
    webrtc: str = "",
) -> FakeRelay:
    relay = relay or FakeRelay()

    async def main() -> None:
        tasks: list[asyncio.Future[Any]] = []

        def spawn(aw: Awaitable[Any]) -> None:
            tasks.append(asyncio.ensure_future(aw))

        media = MediaSession(relay, MediaProfiles.from_config(webrtc=webrtc), spawn)
        h = Harness(dialogs=DialogTracker(), media=media, spawn=spawn)
        await body(h, relay)

    asyncio.run(main())
    return relay


async def settle(rounds: int = 20) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


def test_offer_answer_and_delete_around_a_call() -> None:
    async def body(h: Harness, relay: FakeRelay) -> None:
        h.feed(with_sdp(invite(), SDP_A))
        await settle()
        take_resp(h, 100)
        fwd, _ = take_req(h, "INVITE")
        assert "203.0.113.9" in body_of(fwd) and "6000" not in body_of(fwd)
        assert fwd.header("Content-Length") == str(len(fwd.body))
        h.feed(with_sdp(answer(fwd, 200), SDP_B), remote=("127.0.0.1", 5070))
        await settle()
        ok = take_resp(h, 200)
        assert "203.0.113.9" in body_of(ok) and "7000" not in body_of(ok)
        h.feed(ack_for(ok))
        h.feed(bye_from_caller(ok))
        await settle()

    relay = run(body)
    assert relay.names() == ["offer", "answer", "delete"]
    offer, ans, _ = relay.commands
    assert (offer.call_id, offer.from_tag) == ("call-1", "a1")
    assert (ans.from_tag, ans.to_tag) == ("a1", "b1")
    # UDP both sides: plain RTP profile on both legs
    for cmd in (offer, ans):
        assert cmd.options["transport-protocol"] == "RTP/AVP"
        assert cmd.options["ICE"] == "remove"
        assert cmd.options["replace"] == ["origin", "session-connection"]


def test_webrtc_caller_gets_dtls_ice_answer_and_the_pbx_plain_rtp() -> None:
    async def body(h: Harness, relay: FakeRelay) -> None:
        h.feed(with_sdp(invite(), SDP_A), transport="ws")
        await settle()
        fwd, _ = take_req(h, "INVITE")
        h.feed(with_sdp(answer(fwd, 200), SDP_B), remote=("127.0.0.1", 5070))
        await settle()
        take_resp(h, 200)

    relay = run(body)
    offer, ans = relay.commands
    assert offer.options["transport-protocol"] == "RTP/AVP"  # to the UDP callee
    assert offer.options["rtcp-mux"] == ["demux"]
    assert ans.options["transport-protocol"] == "UDP/TLS/RTP/SAVPF"  # to the browser
    assert ans.options["ICE"] == "force" and ans.options["DTLS"] == "passive"
    assert "generate-mid" in ans.flags


def test_operator_flags_replace_the_builtin_profile_and_unknown_words_pass() -> None:
    async def body(h: Harness, relay: FakeRelay) -> None:
        h.feed(with_sdp(invite(), SDP_A), transport="ws")
        await settle()
        fwd, _ = take_req(h, "INVITE")
        h.feed(with_sdp(answer(fwd, 200), SDP_B), remote=("127.0.0.1", 5070))
        await settle()

    relay = run(body, webrtc="RTP/SAVPF ICE=force my-new-flag")
    ans = relay.commands[1]
    assert ans.options["transport-protocol"] == "RTP/SAVPF" and "DTLS" not in ans.options
    assert ans.flags == ["my-new-flag"]


def test_late_offer_in_200_is_answered_from_the_ack() -> None:
    async def body(h: Harness, relay: FakeRelay) -> None:
        h.feed(invite())
        await settle()
        fwd, _ = take_req(h, "INVITE")
        h.feed(with_sdp(answer(fwd, 200), SDP_B), remote=("127.0.0.1", 5070))
        await settle()
        ok = take_resp(h, 200)
        assert "203.0.113.9" in body_of(ok)
        h.feed(ack_for(ok, sdp=SDP_A))
        await settle()
        ack, _ = take_req(h, "ACK")
        assert "203.0.113.9" in body_of(ack) and "6000" not in body_of(ack)

    relay = run(body)
    offer, ans = relay.commands
    assert offer.name == "offer" and offer.from_tag == "b1"  # the callee offered
    assert ans.name == "answer" and (ans.from_tag, ans.to_tag) == ("b1", "a1")


def test_relay_down_gives_503_and_nothing_is_forwarded() -> None:
    async def body(h: Harness, relay: FakeRelay) -> None:
        h.feed(with_sdp(invite(), SDP_A))
        await settle()
        take_resp(h, 100)
        err = take_resp(h, 503)
        assert err.reason == "Media Relay Unavailable"
        assert not [m for m, _ in h.take() if isinstance(m, Request)]

    run(body, FakeRelay(fail=True))


def test_a_slow_answer_keeps_the_order_of_responses() -> None:
    async def body(h: Harness, relay: FakeRelay) -> None:
        h.feed(with_sdp(invite(), SDP_A))
        await settle()
        fwd, _ = take_req(h, "INVITE")
        h.take()
        h.feed(with_sdp(answer(fwd, 183), SDP_B), remote=("127.0.0.1", 5070))
        h.feed(with_sdp(answer(fwd, 200), SDP_B), remote=("127.0.0.1", 5070))
        assert not h.sent  # both wait for the relay
        await asyncio.sleep(0.1)
        await settle()
        statuses = [m.status for m, _ in h.take() if isinstance(m, Response)]
        assert statuses == [183, 200]

    run(body, FakeRelay(delay=0.02))


def test_cancelled_call_deletes_its_media() -> None:
    async def body(h: Harness, relay: FakeRelay) -> None:
        h.feed(with_sdp(invite(), SDP_A))
        await settle()
        fwd, _ = take_req(h, "INVITE")
        h.feed(answer(fwd, 180), remote=("127.0.0.1", 5070))
        h.feed(invite(method="CANCEL"))
        await settle()

    relay = run(body)
    assert relay.names() == ["offer", "delete"]


def test_route_media_set_off_and_named_sets() -> None:
    seen: list[str | None] = []

    class SetRelay(FakeRelay):
        async def offer(self, call_id: str, from_tag: str, sdp: str, **kw: Any) -> Any:
            seen.append(kw.get("node_set"))
            return await super().offer(call_id, from_tag, sdp, **kw)

    for media_set, expected in (("off", []), ("edge", ["edge"]), ("", [None])):
        seen.clear()

        async def body(h: Harness, relay: FakeRelay, media_set: str = media_set) -> None:
            rule = StaticRoute(name="r", to=(parse_uri("sip:127.0.0.1:5070"),), media_set=media_set)
            h.proxy.router = DefaultRouter(DefaultRouterConfig(routes=(rule,)))
            h.feed(with_sdp(invite(), SDP_A))
            await settle()
            fwd, _ = take_req(h, "INVITE")
            h.feed(with_sdp(answer(fwd, 200), SDP_B), remote=("127.0.0.1", 5070))
            await settle()
            ok = take_resp(h, 200)
            assert ("203.0.113.9" in body_of(ok)) == (media_set != "off")

        relay = run(body, SetRelay())
        assert seen == expected
        assert relay.names() == ([] if media_set == "off" else ["offer", "answer"])


def test_reinvite_from_the_callee_is_offered_with_its_own_tag() -> None:
    async def body(h: Harness, relay: FakeRelay) -> None:
        h.feed(with_sdp(invite(), SDP_A))
        await settle()
        fwd, _ = take_req(h, "INVITE")
        h.feed(with_sdp(answer(fwd, 200), SDP_B), remote=("127.0.0.1", 5070))
        await settle()
        ok = take_resp(h, 200)
        h.feed(ack_for(ok))
        h.take()
        rr = ok.header_list("Record-Route")
        reinvite = (
            "INVITE sip:alice@127.0.0.1:5061 SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKre1;rport\r\n"
            + "".join(f"Route: {v}\r\n" for v in rr)
            + f"From: {ok.header('To')}\r\nTo: {ok.header('From')}\r\n"
            "Call-ID: call-1\r\nCSeq: 7 INVITE\r\nMax-Forwards: 70\r\n"
            "Contact: <sip:bob@127.0.0.1:5070>\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        h.feed(with_sdp(reinvite, SDP_B), remote=("127.0.0.1", 5070))
        await settle()
        fwd2, dest = take_req(h, "INVITE")
        assert dest.flow.remote == ("127.0.0.1", 5061) and "203.0.113.9" in body_of(fwd2)
        h.feed(with_sdp(answer(fwd2, 200, to_tag="a1"), SDP_A))
        await settle()
        ok2 = take_resp(h, 200)
        assert "203.0.113.9" in body_of(ok2)
        d = h.proxy.calls.tracker.get("call-1;a1")
        assert d is not None and d.callee.cseq == 7

    relay = run(body)
    assert relay.names() == ["offer", "answer", "offer", "answer"]
    re_offer, re_answer = relay.commands[2:]
    assert re_offer.from_tag == "b1"  # the callee offers now
    assert (re_answer.from_tag, re_answer.to_tag) == ("b1", "a1")
