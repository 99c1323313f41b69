"""Timers A-M with a manual clock (RFC 3261 §17, Table 4; RFC 6026)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from txn_helpers import first_line, request, response, run_timers

from sipedge.sip.errors import ProtocolError
from sipedge.sip.message import Request
from sipedge.sip.transaction import (
    ICTState,
    ISTState,
    NICTState,
    SendMessage,
    ServerTransaction,
    Timer,
    TimerConfig,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimedOut,
)

DEST = ("192.0.2.9", 5060)


def send_times(seen: Sequence[tuple[float, object]]) -> list[float]:
    return [t for t, o in seen if isinstance(o, SendMessage)]


def test_timer_config_durations() -> None:
    c = TimerConfig()
    assert (c.t1, c.t2, c.t4) == (0.5, 4.0, 5.0)
    assert c.duration(Timer.A, reliable=False) == 0.5
    assert c.duration(Timer.A, reliable=True) is None
    assert c.duration(Timer.B, reliable=True) == 32.0
    assert c.duration(Timer.D, reliable=False) == 32.0
    assert c.duration(Timer.D, reliable=True) == 0.0
    assert c.duration(Timer.I, reliable=False) == 5.0
    assert c.duration(Timer.J, reliable=False) == 32.0
    assert c.duration(Timer.K, reliable=True) == 0.0
    assert c.backoff(Timer.A, 4.0) == 8.0  # A is not capped by T2
    assert c.backoff(Timer.E, 4.0) == 4.0
    assert c.backoff(Timer.G, 1.0) == 2.0
    with pytest.raises(ProtocolError):
        c.backoff(Timer.B, 1.0)


@pytest.mark.parametrize("bad", [{"t1": 0}, {"t2": -1.0}, {"t4": float("nan")}, {"t2": 0.1}])
def test_timer_config_rejects_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ProtocolError):
        TimerConfig(**bad)


def test_invite_udp_timer_a_doubles_and_timer_b_fires_at_64_t1() -> None:
    layer = TransactionLayer()
    txn = layer.send_request(request("INVITE"), DEST, 0.0)
    assert send_times([(0.0, o) for o in layer.events()]) == [0.0]
    seen = run_timers(layer, 100.0)
    # §17.1.1.2: T1, 2*T1, 4*T1, ... uncapped; Timer B at 64*T1 = 32 s.
    assert send_times(seen) == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert all(o.dest == DEST for _, o in seen if isinstance(o, SendMessage))
    events = [(t, o) for t, o in seen if not isinstance(o, SendMessage)]
    assert events == [(32.0, TransactionTimedOut(txn, Timer.B)), (32.0, TransactionTerminated(txn))]
    assert len(layer) == 0 and layer.get_timer() is None


def test_invite_tcp_has_no_retransmissions_but_timer_b() -> None:
    layer = TransactionLayer()
    txn = layer.send_request(request("INVITE", transport="TCP"), DEST, 0.0)
    layer.events()
    seen = run_timers(layer, 100.0)
    assert seen == [(32.0, TransactionTimedOut(txn, Timer.B)), (32.0, TransactionTerminated(txn))]


def test_timers_follow_a_configured_t1() -> None:
    layer = TransactionLayer(TimerConfig(t1=0.1, t2=0.4, t4=1.0))
    layer.send_request(request("OPTIONS"), DEST, 10.0)
    layer.events()
    seen = run_timers(layer, 100.0)
    # T1 = 0.1, intervals 0.1, 0.2, 0.4 then capped at T2 = 0.4; F at 64*T1 = 6.4 s.
    expected = [10.1, 10.3, 10.7, *(10.7 + 0.4 * k for k in range(1, 15))]
    assert send_times(seen) == pytest.approx(expected)
    assert [t for t, o in seen if isinstance(o, TransactionTimedOut)] == [pytest.approx(16.4)]


def test_non_invite_udp_timer_e_caps_at_t2_and_timer_f_fires() -> None:
    layer = TransactionLayer()
    txn = layer.send_request(request("OPTIONS"), DEST, 0.0)
    layer.events()
    seen = run_timers(layer, 100.0)
    assert send_times(seen) == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert (32.0, TransactionTimedOut(txn, Timer.F)) in seen


def test_non_invite_proceeding_retransmits_every_t2() -> None:
    layer = TransactionLayer()
    req = request("REGISTER")
    txn = layer.send_request(req, DEST, 0.0)
    layer.receive_response(response(req, 100), DEST, 0.2)
    layer.events()
    assert txn.state is NICTState.PROCEEDING
    seen = run_timers(layer, 20.0)
    # E keeps its T1 deadline, then §17.1.2.2 resets it to T2 each time in "Proceeding".
    assert send_times(seen) == [0.5, 4.5, 8.5, 12.5, 16.5]


@pytest.mark.parametrize(("transport", "k"), [("UDP", 5.0), ("TCP", 0.0)])
def test_non_invite_timer_k(transport: str, k: float) -> None:
    layer = TransactionLayer()
    req = request("OPTIONS", transport=transport)
    txn = layer.send_request(req, DEST, 0.0)
    layer.receive_response(response(req, 200), DEST, 1.0)
    layer.events()
    assert txn.state is NICTState.COMPLETED
    assert layer.get_timer() == 1.0 + k
    assert run_timers(layer, 100.0) == [(1.0 + k, TransactionTerminated(txn))]


@pytest.mark.parametrize(("transport", "d"), [("UDP", 32.0), ("TCP", 0.0)])
def test_invite_timer_d(transport: str, d: float) -> None:
    layer = TransactionLayer()
    req = request("INVITE", transport=transport)
    txn = layer.send_request(req, DEST, 0.0)
    layer.receive_response(response(req, 486), DEST, 2.0)
    layer.events()
    assert txn.state is ICTState.COMPLETED
    assert layer.get_timer() == 2.0 + d
    assert run_timers(layer, 100.0) == [(2.0 + d, TransactionTerminated(txn))]


def test_invite_timer_m_ends_accepted() -> None:
    layer = TransactionLayer()
    req = request("INVITE")
    txn = layer.send_request(req, DEST, 0.0)
    layer.receive_response(response(req, 200), DEST, 1.0)
    layer.events()
    assert txn.state is ICTState.ACCEPTED
    assert run_timers(layer, 100.0) == [(33.0, TransactionTerminated(txn))]


def _ist(layer: TransactionLayer, transport: str = "UDP") -> tuple[Request, ServerTransaction]:
    req = request("INVITE", transport=transport)
    layer.receive_request(req, DEST, 0.0)
    txn = layer.create_server_transaction(req, DEST, 0.0)
    layer.events()
    return req, txn


def test_invite_server_timer_g_doubles_to_t2_and_timer_h_times_out() -> None:
    layer = TransactionLayer()
    req, txn = _ist(layer)
    final = response(req, 486)
    layer.send_response(txn, final, 1.0)
    assert [first_line(o.data) for o in layer.events() if isinstance(o, SendMessage)] == [
        "SIP/2.0 486 Reason"
    ]
    seen = run_timers(layer, 100.0)
    # §17.2.1: G = T1, 2*T1, ... capped at T2; H = 64*T1 after entering "Completed".
    assert send_times(seen) == [1.5, 2.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5, 32.5]
    assert all(o.data == final.to_bytes() for _, o in seen if isinstance(o, SendMessage))
    assert (33.0, TransactionTimedOut(txn, Timer.H)) in seen


def test_invite_server_tcp_no_timer_g_and_timer_i_zero() -> None:
    layer = TransactionLayer()
    req, txn = _ist(layer, "TCP")
    layer.send_response(txn, response(req, 404), 1.0)
    layer.events()
    assert layer.get_timer() == 33.0  # only H
    layer.receive_request(request("ACK", transport="TCP", to_tag="tt1"), DEST, 2.0)
    assert layer.events() == []
    assert txn.state is ISTState.CONFIRMED
    assert run_timers(layer, 100.0) == [(2.0, TransactionTerminated(txn))]


def test_invite_server_timer_i_is_t4_on_udp() -> None:
    layer = TransactionLayer()
    req, txn = _ist(layer)
    layer.send_response(txn, response(req, 404), 1.0)
    layer.events()
    assert send_times(run_timers(layer, 2.0)) == [1.5]
    layer.receive_request(request("ACK", to_tag="tt1"), DEST, 2.0)
    assert txn.state is ISTState.CONFIRMED
    # Timer G stops with the ACK; Timer I = T4 ends "Confirmed".
    assert run_timers(layer, 100.0) == [(7.0, TransactionTerminated(txn))]


def test_invite_server_timer_l_ends_accepted() -> None:
    layer = TransactionLayer()
    req, txn = _ist(layer)
    layer.send_response(txn, response(req, 200), 1.0)
    layer.events()
    assert txn.state is ISTState.ACCEPTED
    assert run_timers(layer, 100.0) == [(33.0, TransactionTerminated(txn))]


@pytest.mark.parametrize(("transport", "j"), [("UDP", 32.0), ("TCP", 0.0)])
def test_non_invite_server_timer_j(transport: str, j: float) -> None:
    layer = TransactionLayer()
    req = request("OPTIONS", transport=transport)
    layer.receive_request(req, DEST, 0.0)
    txn = layer.create_server_transaction(req, DEST, 0.0)
    assert layer.get_timer() is None  # "Trying" runs no timer
    layer.send_response(txn, response(req, 200), 3.0)
    layer.events()
    assert run_timers(layer, 100.0) == [(3.0 + j, TransactionTerminated(txn))]


def test_get_timer_is_the_earliest_over_transactions_and_skips_stale_entries() -> None:
    layer = TransactionLayer()
    inv = request("INVITE", branch="z9hG4bK-a")
    layer.send_request(inv, DEST, 0.0)  # A at 0.5
    layer.send_request(request("OPTIONS", branch="z9hG4bK-b"), DEST, 0.2)  # E at 0.7
    assert layer.get_timer() == 0.5
    layer.receive_response(response(inv, 180), DEST, 0.3)  # stops A and B
    assert layer.get_timer() == 0.7
    layer.handle_timer(0.69)  # too early: nothing happens
    assert layer.get_timer() == 0.7
    layer.events()
    layer.handle_timer(0.7)
    assert [first_line(o.data) for o in layer.events() if isinstance(o, SendMessage)] == [
        "OPTIONS sip:bob@example.com SIP/2.0"
    ]
    assert layer.get_timer() == 1.7


def test_late_handle_timer_fires_everything_due_once() -> None:
    layer = TransactionLayer()
    txn = layer.send_request(request("INVITE"), DEST, 0.0)
    layer.events()
    layer.handle_timer(40.0)  # the caller slept through A and B
    out = layer.events()
    assert out[-2:] == [TransactionTimedOut(txn, Timer.B), TransactionTerminated(txn)]
    assert layer.get_timer() is None


def test_heap_stays_bounded_under_many_reschedules() -> None:
    layer = TransactionLayer()
    txns = []
    for i in range(50):
        req = request("OPTIONS", branch=f"z9hG4bK-{i}")
        txns.append((req, layer.send_request(req, DEST, 0.0)))
    for step in range(1, 200):
        layer.handle_timer(step * 0.1)
    layer.events()
    assert len(layer._heap) <= 2 * len(layer) + 64
