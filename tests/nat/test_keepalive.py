"""NAT keepalives: the pure ping tracker, the OPTIONS it sends, and the async pinger."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Callable
from typing import Any

import pytest

from sipedge.nat.keepalive import CRLF_PING, KeepaliveSettings, PingTracker, options_ping
from sipedge.nat.pinger import NatPinger
from sipedge.registrar import Binding, MemoryLocationStore, Registrar
from sipedge.sip.errors import ProtocolError
from sipedge.transport.base import Flow

from .support import NATED, PUBLIC

NOW = 1000.0
B = Binding(
    aor="sip:alice@example.org",
    contact="sip:alice@192.168.1.20:5060",
    expires_at=NOW + 60,
    call_id="reg-1",
    cseq=1,
    transport="udp",
    local=NATED.local,
    remote=PUBLIC,
    nat=True,
)


def tracker(**kw: Any) -> tuple[PingTracker, Callable[[], str]]:
    seq = itertools.count(1)
    return PingTracker(KeepaliveSettings(**kw)), lambda: f"br{next(seq)}"


def test_only_live_natted_udp_bindings_without_path_are_pinged() -> None:
    t = PingTracker(KeepaliveSettings())
    assert t.eligible(B, NOW)
    assert not t.eligible(dataclasses.replace(B, nat=False), NOW)
    assert not t.eligible(dataclasses.replace(B, transport="tcp", conn_id=4), NOW)
    assert not t.eligible(dataclasses.replace(B, path=("<sip:edge;lr>",)), NOW)
    assert not t.eligible(B, NOW + 60)  # expired exactly at expires_at
    every = PingTracker(KeepaliveSettings(all_udp=True))
    assert every.eligible(dataclasses.replace(B, nat=False), NOW)


def test_answered_pings_keep_the_binding() -> None:
    t, new = tracker(max_lost=2)
    for _ in range(5):
        pings, dead = t.round([B], NOW, new)
        assert dead == [] and [b for b, _ in pings] == [B]
        assert t.answered(pings[0][1])
        assert not t.answered(pings[0][1])  # once only
    assert t.lost(B) == 0


def test_unanswered_pings_remove_the_binding_after_max_lost() -> None:
    t, new = tracker(max_lost=3)
    results = [t.round([B], NOW + i, new) for i in range(4)]
    assert [len(p) for p, _ in results] == [1, 1, 1, 0]
    assert [d for _, d in results] == [[], [], [], [B]]
    # A late answer to an old ping counts for nothing.
    assert not t.answered(results[0][0][0][1])


def test_one_answer_resets_the_count() -> None:
    t, new = tracker(max_lost=2)
    t.round([B], NOW, new)
    pings, _ = t.round([B], NOW, new)
    assert t.lost(B) == 1
    assert t.answered(pings[0][1])
    assert t.lost(B) == 0
    _, dead = t.round([B], NOW, new)
    assert dead == []


def test_a_refresh_starts_over_and_gone_bindings_are_forgotten() -> None:
    t, new = tracker(max_lost=2)
    t.round([B], NOW, new)
    t.round([B], NOW, new)
    assert t.lost(B) == 1
    refreshed = dataclasses.replace(B, cseq=2)
    _, dead = t.round([refreshed], NOW, new)
    assert dead == [] and t.lost(refreshed) == 0 and t.lost(B) == 0
    t.round([], NOW, new)
    assert t._waiting == {} and t._by_branch == {}


def test_crlf_mode_never_counts_and_off_sends_nothing() -> None:
    t, new = tracker(mode="crlf", max_lost=1)
    for _ in range(3):
        pings, dead = t.round([B], NOW, new)
        assert len(pings) == 1 and dead == []
    off, new = tracker(mode="off")
    assert off.round([B], NOW, new) == ([], [])
    never, new = tracker(max_lost=0)
    for _ in range(5):
        assert never.round([B], NOW, new)[1] == []


def test_bad_settings() -> None:
    with pytest.raises(ProtocolError):
        KeepaliveSettings(interval=0)
    with pytest.raises(ProtocolError):
        KeepaliveSettings(max_lost=-1)


def test_options_ping_bytes() -> None:
    data = options_ping(B, "198.51.100.10:5060", "z9hG4bKnp1.1", "t1", "c1@sipedge")
    assert data == (
        b"OPTIONS sip:alice@192.168.1.20:5060 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 198.51.100.10:5060;branch=z9hG4bKnp1.1;rport\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: <sip:keepalive@198.51.100.10>;tag=t1\r\n"
        b"To: <sip:alice@192.168.1.20:5060>\r\n"
        b"Call-ID: c1@sipedge\r\n"
        b"CSeq: 1 OPTIONS\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    v6 = options_ping(B, "[2001:db8::1]:5060", "b", "t", "c")
    assert b"From: <sip:keepalive@[2001:db8::1]>;tag=t\r\n" in v6


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def pinger_setup(
    mode: Any = "options", max_lost: int = 2
) -> tuple[NatPinger, Registrar, list[tuple[bytes, Flow]]]:
    clock = Clock()
    store = MemoryLocationStore(clock=clock)
    registrar = Registrar(store, clock=clock)
    sent: list[tuple[bytes, Flow]] = []

    def send(data: bytes, flow: Flow) -> bool:
        sent.append((data, flow))
        return True

    seq = itertools.count()
    pinger = NatPinger(
        store=store,
        send=send,
        clock=clock,
        settings=KeepaliveSettings(mode=mode, interval=1.0, max_lost=max_lost),
        via_for=lambda flow: "198.51.100.10:5060",
        remove=registrar.remove_binding,
        token=lambda n: f"{next(seq):0{2 * n}x}",
    )
    return pinger, registrar, sent


def answer(ping: bytes, status: bytes = b"200 OK") -> bytes:
    via = next(ln for ln in ping.split(b"\r\n") if ln.startswith(b"Via:"))
    return b"SIP/2.0 " + status + b"\r\n" + via + b"\r\nCSeq: 1 OPTIONS\r\n\r\n"


def test_pinger_pings_over_the_flow_and_claims_answers() -> None:
    async def main() -> None:
        pinger, registrar, sent = pinger_setup()
        await registrar.store.replace(B.aor, [B])
        other = dataclasses.replace(B, aor="sip:bob@example.org", nat=False)
        await registrar.store.replace(other.aor, [other])
        await pinger.tick()
        assert len(sent) == 1
        data, flow = sent[0]
        assert flow == B.flow and data.startswith(b"OPTIONS sip:alice@192.168.1.20:5060 ")
        # Any status proves the UA alive; requests and other responses are not ours.
        assert pinger.claim(answer(data, b"405 Method Not Allowed"), B.flow)
        assert not pinger.claim(data, B.flow)
        assert not pinger.claim(
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP x;branch=z9hG4bKo\r\n\r\n", B.flow
        )
        assert pinger.stats == {"sent": 1, "answered": 1, "removed": 0}

    asyncio.run(main())


def test_pinger_removes_a_silent_binding_and_keeps_an_answering_one() -> None:
    async def main() -> None:
        pinger, registrar, sent = pinger_setup(max_lost=2)
        alive = dataclasses.replace(B, aor="sip:bob@example.org", contact="sip:bob@10.0.0.9")
        await registrar.store.replace(B.aor, [B])
        await registrar.store.replace(alive.aor, [alive])
        for _ in range(3):
            sent.clear()
            await pinger.tick()
            for data, _flow in sent:
                if b"sip:bob@" in data:
                    assert pinger.claim(answer(data), B.flow)
        assert await registrar.store.lookup(B.aor) == []
        assert await registrar.store.lookup(alive.aor) == [alive]
        assert pinger.stats["removed"] == 1

    asyncio.run(main())


def test_remove_binding_spares_a_refreshed_binding() -> None:
    async def main() -> None:
        _, registrar, _ = pinger_setup()
        refreshed = dataclasses.replace(B, cseq=2)
        await registrar.store.replace(B.aor, [refreshed])
        assert not await registrar.remove_binding(B)
        assert await registrar.store.lookup(B.aor) == [refreshed]
        assert await registrar.remove_binding(refreshed)
        assert await registrar.store.lookup(B.aor) == []

    asyncio.run(main())


def test_crlf_pings_are_four_bytes() -> None:
    async def main() -> None:
        pinger, registrar, sent = pinger_setup(mode="crlf")
        await registrar.store.replace(B.aor, [B])
        await pinger.tick()
        assert sent == [(CRLF_PING, B.flow)] and len(CRLF_PING) == 4

    asyncio.run(main())


def test_a_ping_that_cannot_be_sent_never_counts_as_lost() -> None:
    async def main() -> None:
        pinger, registrar, _ = pinger_setup(max_lost=1)
        pinger.send = lambda data, flow: False  # e.g. another node's listener
        await registrar.store.replace(B.aor, [B])
        for _ in range(3):
            await pinger.tick()
        assert await registrar.store.lookup(B.aor) == [B]
        assert pinger.stats == {"sent": 0, "answered": 0, "removed": 0}

    asyncio.run(main())
