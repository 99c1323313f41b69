"""The local REGISTER lane: REGISTERs our registrar answers get no server transaction, yet
retransmissions behave as RFC 3261 §17.2.2 says (absorbed while pending, the same final
response again after it)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from sipedge.proxy.default_router import DefaultRouter, DefaultRouterConfig
from sipedge.proxy.hooks import BaseRouter, Decision, Relay, RequestContext, Respond, Target
from sipedge.proxy.lane import DELEGATED, PENDING, AnswerCache, RegisterLane
from sipedge.proxy.targets import Dest
from sipedge.registrar import MemoryLocationStore, Registrar
from sipedge.sip.message import Request, Response
from sipedge.sip.parser import parse_message
from sipedge.sip.uri import parse_uri
from sipedge.transport.base import Flow

from .harness import ME, Harness

LINGER = 32.0


def register(
    branch: str = "z9hG4bKr1",
    *,
    uri: str = "sip:example.org",
    extra: str = "",
    cseq: int = 1,
    max_forwards: int = 70,
) -> bytes:
    return (
        f"REGISTER {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5061;branch={branch}\r\n"
        f"Max-Forwards: {max_forwards}\r\n"
        "From: <sip:alice@example.org>;tag=f1\r\n"
        "To: <sip:alice@example.org>\r\n"
        "Call-ID: reg-1\r\n"
        f"CSeq: {cseq} REGISTER\r\n"
        "Contact: <sip:alice@127.0.0.1:5061>\r\n"
        f"{extra}Expires: 600\r\nContent-Length: 0\r\n\r\n"
    ).encode()


class CountingRegistrar(Registrar):
    """The real registrar, counting the REGISTERs it processes."""

    calls = 0

    async def register(self, req: Request, flow: Flow, *, nat: bool = False) -> Any:
        self.calls += 1
        return await super().register(req, flow, nat=nat)


class Rig:
    """A proxy harness with the lane in front of its transaction layer."""

    def __init__(self, router: BaseRouter | None = None, *, eager: bool = False) -> None:
        self.tasks: list[asyncio.Future[Any]] = []
        self.registrar = CountingRegistrar(MemoryLocationStore(None))
        config = DefaultRouterConfig(registrar=self.registrar)
        self.h = Harness(router=router or DefaultRouter(config), spawn=self._spawn)
        self.wire: list[tuple[bytes, Dest]] = []
        self.lane = RegisterLane(self.h.proxy, self._send, LINGER, eager=eager)

    def _spawn(self, aw: Awaitable[Any]) -> None:
        self.tasks.append(asyncio.ensure_future(aw))

    def _send(self, data: bytes, dest: Dest) -> None:
        self.wire.append((data, dest))

    def feed(self, data: bytes, transport: str = "udp") -> bool:
        """Feed like the engine does; whether the lane took the request."""
        conn = 7 if transport != "udp" else None
        flow = Flow(transport, (ME, 5060), ("127.0.0.1", 5061), conn)
        msg = parse_message(data)
        assert isinstance(msg, Request)
        if self.lane.take(msg, flow):
            return True
        self.h.layer.receive_message(msg, flow, self.h.now)
        self.h.pump()
        return False

    async def settle(self) -> None:
        for _ in range(10):
            await asyncio.sleep(0)

    def statuses(self) -> list[int]:
        out = []
        for data, _ in self.wire:
            msg = parse_message(data)
            assert isinstance(msg, Response)
            out.append(msg.status)
        return out


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_register_is_answered_without_a_server_transaction() -> None:
    async def main() -> None:
        rig = Rig()
        assert rig.feed(register())
        await rig.settle()
        assert rig.statuses() == [200]
        assert len(rig.h.layer) == 0  # no transaction object at all
        assert len(await rig.registrar.bindings("sip:alice@example.org")) == 1
        resp = parse_message(rig.wire[0][0])
        assert isinstance(resp, Response)
        assert resp.to_tag  # §8.2.6.2: a final response gets a To tag
        assert "received=" not in resp.header("Via")  # sent-by matched the source

    run(main())


def test_retransmission_after_the_answer_gets_the_same_bytes() -> None:
    async def main() -> None:
        rig = Rig()
        rig.feed(register())
        await rig.settle()
        rig.h.now += 1.0
        assert rig.feed(register())
        await rig.settle()
        assert len(rig.wire) == 2
        assert rig.wire[0] == rig.wire[1]  # same bytes (same To tag), same destination
        assert rig.registrar.calls == 1  # the registrar saw the request once

    run(main())


def test_retransmission_while_pending_is_absorbed() -> None:
    async def main() -> None:
        rig = Rig()
        rig.feed(register())
        assert rig.feed(register())  # before the first one's answer was worked out
        assert rig.wire == []
        await rig.settle()
        assert rig.statuses() == [200]
        assert rig.registrar.calls == 1

    run(main())


def test_answer_is_forgotten_after_timer_j() -> None:
    async def main() -> None:
        rig = Rig()
        rig.feed(register())
        await rig.settle()
        rig.h.now += LINGER + 0.1  # §17.2.2 Timer J = 64*T1 has fired
        rig.feed(register())
        await rig.settle()
        assert rig.registrar.calls == 2
        assert len(rig.lane.answers) == 1

    run(main())


def test_reliable_transport_keeps_no_answer() -> None:
    async def main() -> None:
        rig = Rig()
        rig.feed(register().replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP"), transport="tcp")
        await rig.settle()
        assert rig.statuses() == [200]
        assert len(rig.lane.answers) == 0  # Timer J is 0 on reliable transports

    run(main())


def test_requests_outside_the_lane_go_to_the_transaction_layer() -> None:
    async def main() -> None:
        rig = Rig()
        assert not rig.feed(register(uri="sip:elsewhere.net"))  # not our domain
        assert not rig.feed(register(branch="old-2543-branch"))  # no RFC 3261 branch
        route = "Route: <sip:127.0.0.1:5060;lr>\r\n"
        assert not rig.feed(register(branch="z9hG4bKr2", extra=route))
        plain = Rig(router=BaseRouter())  # a router that does not declare REGISTERs
        assert not plain.feed(register())
        await rig.settle()
        await plain.settle()

    run(main())


def test_checks_and_draining_answer_in_the_lane() -> None:
    async def main() -> None:
        rig = Rig()
        assert rig.feed(register(max_forwards=0))
        rig.h.proxy.draining = True
        assert rig.feed(register(branch="z9hG4bKr2"))
        await rig.settle()
        assert rig.statuses() == [483, 503]
        assert rig.registrar.calls == 0

    run(main())


class RelayingRouter(BaseRouter):
    """Declares REGISTERs for the lane, then relays them (a custom router may)."""

    def answers_register(self, ctx: RequestContext) -> bool:
        return True

    def on_request(self, ctx: RequestContext) -> Decision:
        return Relay([Target(dst=parse_uri("sip:127.0.0.1:5070"))])


def test_a_relayed_register_gets_a_server_transaction() -> None:
    async def main() -> None:
        rig = Rig(router=RelayingRouter())
        assert rig.feed(register())
        await rig.settle()
        assert len(rig.h.layer) >= 2  # the server transaction and the branch's client one
        forwarded = [m for m, _ in rig.h.take() if isinstance(m, Request)]
        assert [m.method for m in forwarded] == ["REGISTER"]
        assert not rig.feed(register())  # its retransmission goes to that transaction
        await rig.settle()
        assert rig.h.take() == []  # absorbed by the server transaction (§17.2.2)

    run(main())


DEST = Dest(Flow("udp", (ME, 5060), ("127.0.0.1", 5061)))


def test_answer_cache_states_and_expiry() -> None:
    cache = AnswerCache(linger=10.0)
    key = ("z9hG4bK1", "host", 5061)
    cache.begin(key, 0.0)
    assert cache.get(key, 1.0) is PENDING
    cache.answered(key, b"SIP/2.0 200 OK", DEST, 5.0, keep=True)
    assert cache.get(key, 12.0) == (b"SIP/2.0 200 OK", DEST)  # the begin record is stale
    assert cache.get(key, 15.0) is None
    cache.delegate(key, 20.0)
    assert cache.get(key, 21.0) is DELEGATED
    cache.forget(key)
    assert cache.get(key, 21.0) is None


def test_answer_cache_is_bounded() -> None:
    cache = AnswerCache(linger=10.0, max_entries=3)
    for i in range(5):
        cache.answered(("b", "h", i), b"x", DEST, float(i), keep=True)
    assert len(cache) == 3
    assert cache.get(("b", "h", 0), 5.0) is None  # the oldest went first
    assert cache.get(("b", "h", 4), 5.0) == (b"x", DEST)


def test_eager_lane_answers_without_a_task() -> None:
    async def main() -> None:
        rig = Rig(eager=True)
        assert rig.feed(register())
        assert rig.statuses() == [200]  # answered before the loop ran at all
        assert rig.tasks == []
        assert rig.registrar.calls == 1

    run(main())


class WaitingRouter(BaseRouter):
    """Answers REGISTER after waiting for a future that the test completes (or fails)."""

    def __init__(self) -> None:
        self.gate: asyncio.Future[str] | None = None
        self.seen: list[str] = []

    def answers_register(self, ctx: RequestContext) -> bool:
        return True

    async def on_request(self, ctx: RequestContext) -> Decision:
        self.gate = asyncio.get_running_loop().create_future()
        try:
            self.seen.append(await self.gate)
        except ValueError as exc:
            self.seen.append(f"error {exc}")
            return Respond(500)
        await asyncio.sleep(0)  # a bare yield after the first wait
        return Respond(200)


def test_eager_lane_hands_a_waiting_coroutine_to_a_task() -> None:
    async def main() -> None:
        router = WaitingRouter()
        rig = Rig(router=router, eager=True)
        rig.feed(register())
        assert rig.wire == [] and len(rig.tasks) == 1
        assert rig.feed(register())  # a retransmission while it waits is absorbed
        assert router.gate is not None
        router.gate.set_result("value")
        await rig.settle()
        assert router.seen == ["value"] and rig.statuses() == [200]
        rig.feed(register(branch="z9hG4bKr2"))
        router.gate.set_exception(ValueError("boom"))
        await rig.settle()
        assert router.seen[-1] == "error boom" and rig.statuses() == [200, 500]

    run(main())


def test_cancelling_the_task_closes_the_waiting_coroutine() -> None:
    async def main() -> None:
        router = WaitingRouter()
        rig = Rig(router=router, eager=True)
        rig.feed(register())
        await asyncio.sleep(0)
        rig.tasks[0].cancel()
        await rig.settle()
        assert rig.tasks[0].cancelled()
        assert router.gate is not None and router.gate.cancelled()
        assert rig.wire == []

    run(main())


class ChallengingRouter(BaseRouter):
    """Challenges every REGISTER, counting them."""

    def __init__(self) -> None:
        self.seen = 0

    def answers_register(self, ctx: RequestContext) -> bool:
        return True

    def on_request(self, ctx: RequestContext) -> Decision:
        self.seen += 1
        return Respond(401, None, [("WWW-Authenticate", f'Digest realm="r", nonce="n{self.seen}"')])


def test_challenges_are_not_kept() -> None:
    async def main() -> None:
        router = ChallengingRouter()
        rig = Rig(router=router)
        rig.feed(register())
        rig.feed(register())  # the retransmission is challenged afresh (stateless nonces)
        assert rig.statuses() == [401, 401] and router.seen == 2
        assert len(rig.lane.answers) == 0

    run(main())


def test_sweep_forgets_expired_answers_without_traffic() -> None:
    async def main() -> None:
        rig = Rig()
        rig.feed(register())
        await rig.settle()
        assert len(rig.lane.answers) == 1
        sweeper = asyncio.ensure_future(rig.lane.sweep(every=0.001))
        await asyncio.sleep(0.01)
        assert len(rig.lane.answers) == 1  # not yet due
        rig.h.now += LINGER + 0.1
        for _ in range(100):
            await asyncio.sleep(0.002)
            if not rig.lane.answers:
                break
        sweeper.cancel()
        assert len(rig.lane.answers) == 0

    run(main())
