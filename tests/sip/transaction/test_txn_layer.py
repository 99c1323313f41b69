"""Client behaviour, CANCEL, transport errors, misuse, and a random walk over the layer."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from txn_helpers import first_line, others, request, response, sends

from sipedge.sip.errors import ProtocolError
from sipedge.sip.message import Request
from sipedge.sip.parser import parse_message
from sipedge.sip.transaction import (
    ClientTransaction,
    ICTState,
    ISTState,
    RequestReceived,
    ResponseReceived,
    SendMessage,
    ServerTransaction,
    TransactionLayer,
    TransactionTerminated,
    TransportFailed,
)

DEST = "flow-1"


def test_non_2xx_final_is_acked_by_the_transaction_and_retransmissions_reack() -> None:
    layer = TransactionLayer()
    inv = request("INVITE")
    ict = layer.send_request(inv, DEST, 0.0)
    assert layer.events() == [SendMessage(inv.to_bytes(), DEST)]
    busy = response(inv, 486, to_tag="callee")
    layer.receive_response(busy, "peer", 0.3)
    out = layer.events()
    assert others(out) == [ResponseReceived(busy, "peer", ict)]
    [ack_bytes] = sends(out)
    assert out[0] == SendMessage(ack_bytes, DEST)  # to the INVITE's destination (§17.1.1.3)
    ack = parse_message(ack_bytes)
    assert isinstance(ack, Request) and ack.method == "ACK"
    assert ack.vias[0].branch == inv.vias[0].branch and len(ack.vias) == 1
    assert ack.to_tag == "callee" and (ack.cseq.number, ack.cseq.method) == (1, "ACK")
    assert ict.state is ICTState.COMPLETED
    layer.receive_response(busy, "peer", 0.5)
    assert layer.events() == [SendMessage(ack_bytes, DEST)]  # re-ACK, not reported again


def test_every_2xx_to_invite_goes_to_the_tu_and_is_never_acked_here() -> None:
    layer = TransactionLayer()
    inv = request("INVITE")
    ict = layer.send_request(inv, DEST, 0.0)
    layer.events()
    ok_a, ok_b = response(inv, 200, to_tag="a"), response(inv, 200, to_tag="b")
    for ok in (ok_a, ok_a, ok_b):
        layer.receive_response(ok, "peer", 0.2)
        assert layer.events() == [ResponseReceived(ok, "peer", ict)]  # RFC 6026 §8.4
    assert ict.state is ICTState.ACCEPTED
    layer.receive_response(response(inv, 180), "peer", 0.3)
    assert layer.events() == []


def test_non_invite_final_retransmission_absorbed_provisionals_reported() -> None:
    layer = TransactionLayer()
    req = request("BYE", to_tag="x")
    txn = layer.send_request(req, DEST, 0.0)
    layer.events()
    trying = response(req, 100)
    layer.receive_response(trying, "peer", 0.1)
    layer.receive_response(trying, "peer", 0.2)
    assert layer.events() == [ResponseReceived(trying, "peer", txn)] * 2
    ok = response(req, 200)
    layer.receive_response(ok, "peer", 0.3)
    layer.receive_response(ok, "peer", 0.4)
    assert layer.events() == [ResponseReceived(ok, "peer", txn)]


def test_cancel_waits_for_a_provisional_in_calling() -> None:
    layer = TransactionLayer()
    inv = request("INVITE")
    ict = layer.send_request(inv, DEST, 0.0)
    layer.events()
    assert layer.cancel(ict, 0.1) is None  # §9.1: MUST NOT be sent before a provisional
    assert layer.events() == [] and ict.cancel_requested
    ringing = response(inv, 180)
    layer.receive_response(ringing, "peer", 0.4)
    out = layer.events()
    assert out[0] == ResponseReceived(ringing, "peer", ict)
    cancel_txn = ict.cancel_transaction
    assert cancel_txn is not None and out[1:] == [SendMessage(cancel_txn.request.to_bytes(), DEST)]
    assert first_line(out[1].data) == "CANCEL sip:bob@example.com SIP/2.0"  # type: ignore[union-attr]
    assert cancel_txn.request.vias[0].branch == inv.vias[0].branch
    assert cancel_txn.request.cseq.number == inv.cseq.number
    assert layer.cancel(ict, 0.5) is cancel_txn  # idempotent


def test_cancel_in_proceeding_is_sent_at_once_and_not_after_a_final() -> None:
    layer = TransactionLayer()
    inv = request("INVITE")
    ict = layer.send_request(inv, DEST, 0.0)
    layer.receive_response(response(inv, 183), "peer", 0.1)
    layer.events()
    cancel_txn = layer.cancel(ict, 0.2)
    assert isinstance(cancel_txn, ClientTransaction) and len(sends(layer.events())) == 1
    other = layer.send_request(request("INVITE", branch="z9hG4bK-2"), DEST, 0.0)
    layer.receive_response(response(other.request, 486), "peer", 0.1)
    assert layer.cancel(other, 0.2) is None


def test_cancel_requested_in_calling_is_dropped_by_a_final_response() -> None:
    layer = TransactionLayer()
    inv = request("INVITE")
    ict = layer.send_request(inv, DEST, 0.0)
    layer.cancel(ict, 0.1)
    layer.events()
    layer.receive_response(response(inv, 603), "peer", 0.2)
    assert all(first_line(d).startswith("ACK") for d in sends(layer.events()))
    assert ict.cancel_transaction is None


def test_client_transport_error_ends_the_transaction() -> None:
    layer = TransactionLayer()
    inv = request("INVITE")
    ict = layer.send_request(inv, DEST, 0.0)
    layer.events()
    layer.transport_error(ict, 0.1, "connection refused")
    out = layer.events()
    assert out == [TransportFailed(ict, "connection refused"), TransactionTerminated(ict)]
    assert len(layer) == 0 and layer.get_timer() is None
    stray = response(inv, 200)
    layer.receive_response(stray, "peer", 0.2)
    assert not isinstance(layer.events()[0], ResponseReceived)


def test_server_transport_errors() -> None:
    layer = TransactionLayer()
    inv = request("INVITE", transport="TCP")
    ist = layer.create_server_transaction(inv, "flow", 0.0)
    opt = request("OPTIONS", transport="TCP", branch="z9hG4bK-o")
    nist = layer.create_server_transaction(opt, "flow", 0.0)
    layer.events()
    layer.transport_error(ist, 0.1, "closed")
    # RFC 6026 Figure 7: the INVITE server transaction informs the TU and stays.
    assert layer.events() == [TransportFailed(ist, "closed")]
    assert ist.state is ISTState.PROCEEDING
    layer.transport_error(nist, 0.1, "closed")
    assert layer.events() == [TransportFailed(nist, "closed"), TransactionTerminated(nist)]
    assert len(layer) == 1


def test_abandon_ends_quietly() -> None:
    layer = TransactionLayer()
    inv = request("INVITE")
    ict = layer.send_request(inv, DEST, 0.0)
    layer.receive_response(response(inv, 180), "peer", 0.1)
    layer.events()
    layer.abandon(ict, 64.0)
    assert layer.events() == [TransactionTerminated(ict)]
    assert len(layer) == 0


def test_misuse_raises_protocol_error_and_changes_nothing() -> None:
    layer = TransactionLayer()
    with pytest.raises(ProtocolError):
        layer.send_request(request("ACK"), DEST, 0.0)
    with pytest.raises(ProtocolError):
        layer.send_request(request("OPTIONS", branch=None), DEST, 0.0)
    opt = layer.send_request(request("OPTIONS"), DEST, 0.0)
    with pytest.raises(ProtocolError):
        layer.send_request(request("OPTIONS"), DEST, 0.0)
    with pytest.raises(ProtocolError):
        layer.cancel(opt, 0.0)
    inv = request("INVITE")
    ist = layer.create_server_transaction(inv, "src", 0.0, send_trying=False)
    with pytest.raises(ProtocolError):
        layer.create_server_transaction(request("INVITE"), "src", 0.0)
    with pytest.raises(ProtocolError):
        layer.create_server_transaction(request("ACK"), "src", 0.0)
    bogus = response(inv, 404)
    bogus.status = 700  # built by a buggy TU
    with pytest.raises(ProtocolError):
        layer.send_response(ist, bogus, 0.0)
    layer.send_response(ist, response(inv, 404), 0.1)
    layer.events()
    with pytest.raises(ProtocolError):
        layer.send_response(ist, response(inv, 180), 0.2)
    assert ist.state is ISTState.COMPLETED and layer.events() == []
    layer.abandon(ist, 0.3)
    with pytest.raises(ProtocolError):
        layer.send_response(ist, response(inv, 404), 0.4)


def test_pull_api_and_stateless_send() -> None:
    layer = TransactionLayer()
    assert layer.next_event() is None
    layer.send_stateless(b"ping", "there")
    ack = request("ACK", branch="z9hG4bK-ack", to_tag="t")
    layer.send_stateless(ack, "there")
    assert layer.next_event() == SendMessage(b"ping", "there")
    assert layer.events() == [SendMessage(ack.to_bytes(), "there")]
    opt = request("OPTIONS")
    layer.receive_message(opt, "src", 0.0)
    assert layer.next_event() == RequestReceived(opt, "src")


BRANCHES = ["z9hG4bK-1", "z9hG4bK-2", "z9hG4bK"]  # the last falls back to RFC 2543 rules


class LayerWalk(RuleBasedStateMachine):
    """Random peers, TU calls and clock jumps: the layer stays consistent."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = TransactionLayer()
        self.now = 0.0
        self.servers: list[ServerTransaction] = []
        self.requests: dict[int, Request] = {}
        self.clients: list[ClientTransaction] = []
        self.ended: set[int] = set()

    def _drain(self) -> None:
        for txn in list(self.clients):  # CANCELs the layer sent after a provisional
            if txn.cancel_transaction is not None and txn.cancel_transaction not in self.clients:
                self.clients.append(txn.cancel_transaction)
        for out in self.layer.events():
            if isinstance(out, TransactionTerminated):
                assert id(out.transaction) not in self.ended  # reported once
                self.ended.add(id(out.transaction))
            elif isinstance(out, RequestReceived):
                stx = self.layer.create_server_transaction(out.request, "src", self.now)
                self.servers.append(stx)
                # The transaction keeps only a summary of its request after a final
                # response; the TU keeps the request itself.
                self.requests[id(stx)] = out.request
            elif not isinstance(out, SendMessage):
                owner = getattr(out, "transaction", None)
                assert owner is None or id(owner) not in self.ended

    @rule(method=st.sampled_from(["INVITE", "OPTIONS", "ACK", "CANCEL"]), b=st.integers(0, 2))
    def peer_request(self, method: str, b: int) -> None:
        req = request(method, branch=BRANCHES[b])
        self.layer.receive_request(req, "src", self.now)
        self._drain()

    @rule(status=st.sampled_from([100, 180, 200, 404, 603]), i=st.integers(0, 20))
    def tu_response(self, status: int, i: int) -> None:
        if self.servers:
            txn = self.servers[i % len(self.servers)]
            before = txn.state
            try:
                req = self.requests[id(txn)]
                self.layer.send_response(txn, response(req, status), self.now)
            except ProtocolError:
                assert txn.state is before
            self._drain()

    @rule(method=st.sampled_from(["INVITE", "OPTIONS"]), b=st.integers(0, 1))
    def tu_request(self, method: str, b: int) -> None:
        req = request(method, branch=BRANCHES[b])
        try:
            txn = self.layer.send_request(req, DEST, self.now)
        except ProtocolError:
            return
        self.clients.append(txn)
        self.requests[id(txn)] = req
        self._drain()

    @rule(status=st.sampled_from([100, 180, 200, 486]), i=st.integers(0, 20))
    def peer_response(self, status: int, i: int) -> None:
        if self.clients:
            txn = self.clients[i % len(self.clients)]
            req = self.requests.get(id(txn), txn.request)
            if not isinstance(req, Request):
                return  # a CANCEL transaction that already has its final response
            self.layer.receive_response(response(req, status), "peer", self.now)
            self._drain()

    @rule(i=st.integers(0, 20), cancel=st.booleans())
    def tu_cancel_or_transport_error(self, i: int, cancel: bool) -> None:
        pool: list[ClientTransaction | ServerTransaction] = [*self.clients, *self.servers]
        live = [t for t in pool if not t.terminated]
        if live:
            txn = live[i % len(live)]
            if cancel and isinstance(txn, ClientTransaction) and txn.is_invite:
                self.layer.cancel(txn, self.now)
            else:
                self.layer.transport_error(txn, self.now)
            self._drain()

    @rule(dt=st.floats(0.0, 40.0))
    def clock(self, dt: float) -> None:
        self.now += dt
        self.layer.handle_timer(self.now)
        self._drain()

    @invariant()
    def consistent(self) -> None:
        deadline = self.layer.get_timer()
        assert deadline is None or deadline >= self.now
        every: list[ClientTransaction | ServerTransaction] = [*self.clients, *self.servers]
        assert len(self.layer) <= len([t for t in every if not t.terminated])
        assert all((id(t) in self.ended) == t.terminated for t in every)


LayerWalk.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestLayerWalk = LayerWalk.TestCase
