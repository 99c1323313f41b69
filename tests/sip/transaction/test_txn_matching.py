"""Transaction matching (RFC 3261 §17.1.3, §17.2.3, §9.2) and the RFC 2543 fallback."""

from __future__ import annotations

from pathlib import Path

import pytest
from txn_helpers import first_line, others, request, response, sends

from sipedge.sip.message import Request
from sipedge.sip.parser import parse_message
from sipedge.sip.transaction import (
    AckReceived,
    CancelReceived,
    ISTState,
    NISTState,
    RequestReceived,
    ResponseReceived,
    ServerTransaction,
    StrayResponseReceived,
    TransactionLayer,
    is_rfc3261_branch,
)
from sipedge.sip.transaction.key import (
    ClientKey,
    LegacyKey,
    ServerKey,
    client_key,
    match_method,
    server_key,
)

DATA = Path(__file__).parent.parent.parent / "data" / "rfc4475"
SRC = ("198.51.100.7", 5060)


@pytest.mark.parametrize(
    ("branch", "expected"),
    [
        ("z9hG4bK776asdhds", True),
        ("z9hG4bK", False),  # RFC 4475 §3.2.1: the bare cookie is an RFC 2543 branch
        ("Z9HG4BK776", False),
        ("776asdhds", False),
        ("", False),
        (None, False),
    ],
)
def test_magic_cookie(branch: str | None, expected: bool) -> None:
    assert is_rfc3261_branch(branch) is expected


def parse_req(data: bytes) -> Request:
    msg = parse_message(data)
    assert isinstance(msg, Request)
    return msg


def _key(method: str, branch: str | None, **kw: object) -> ServerKey | LegacyKey:
    values: dict[str, object] = {
        "sent_by": ("Host.Example.com", 5060),
        "transport": "udp",
        "request_uri": "sip:bob@example.com",
        "from_tag": "f",
        "call_id": "c",
        "cseq_number": 1,
    }
    values.update(kw)
    return server_key(method=method, branch=branch, **values)  # type: ignore[arg-type]


def test_server_keys_over_plain_values() -> None:
    k = _key("INVITE", "z9hG4bKx")
    assert k == ServerKey("z9hG4bKx", "host.example.com", 5060, "INVITE")
    assert _key("ACK", "z9hG4bKx") == k  # ACK matches the INVITE (§17.2.3)
    assert _key("CANCEL", "z9hG4bKx") != k  # CANCEL has its own transaction
    assert _key("INVITE", "z9hG4bKx", sent_by=("other.example.com", 5060)) != k
    assert _key("INVITE", "z9hG4bKx", call_id="different") == k  # 3261: branch decides
    legacy = _key("INVITE", "z9hG4bK")
    assert isinstance(legacy, LegacyKey)
    assert _key("INVITE", "z9hG4bK", call_id="different") != legacy
    assert _key("ACK", None) == _key("INVITE", None)
    assert match_method("ACK") == "INVITE" and match_method("BYE") == "BYE"


def test_client_keys() -> None:
    assert client_key("z9hG4bKa", "INVITE") == ClientKey("z9hG4bKa", "INVITE")
    assert client_key("z9hG4bKa", "CANCEL") != client_key("z9hG4bKa", "INVITE")
    assert client_key(None, "INVITE") is None


# ---------------------------------------------------------------- server side, RFC 3261


def _server(layer: TransactionLayer, req: Request) -> ServerTransaction:
    layer.receive_request(req, SRC, 0.0)
    assert layer.events() == [RequestReceived(req, SRC)]
    return layer.create_server_transaction(req, SRC, 0.0)


def test_invite_retransmission_resends_the_last_provisional_only() -> None:
    layer = TransactionLayer()
    txn = _server(layer, request("INVITE"))
    assert [first_line(d) for d in sends(layer.events())] == ["SIP/2.0 100 Trying"]
    ringing = response(txn.request, 180)
    layer.send_response(txn, ringing, 0.1)
    layer.events()
    layer.receive_request(request("INVITE"), SRC, 0.2)  # a retransmission
    assert sends(layer.events()) == [ringing.to_bytes()]
    assert txn.state is ISTState.PROCEEDING


def test_non_invite_retransmission_absorbed_then_final_resent() -> None:
    layer = TransactionLayer()
    txn = _server(layer, request("OPTIONS"))
    assert layer.events() == []  # no 100 Trying for non-INVITE
    layer.receive_request(request("OPTIONS"), SRC, 0.1)
    assert layer.events() == []  # "Trying" absorbs it
    ok = response(txn.request, 200)
    layer.send_response(txn, ok, 0.2)
    layer.receive_request(request("OPTIONS"), SRC, 0.3)
    assert sends(layer.events()) == [ok.to_bytes(), ok.to_bytes()]
    assert txn.state is NISTState.COMPLETED


def test_same_branch_from_another_sent_by_is_a_new_request() -> None:
    layer = TransactionLayer()
    _server(layer, request("OPTIONS"))
    other = request("OPTIONS", sent_by="elsewhere.example.com:5060")
    layer.receive_request(other, SRC, 0.1)
    assert layer.events() == [RequestReceived(other, SRC)]


def test_ack_for_non_2xx_is_absorbed_by_the_invite_transaction() -> None:
    layer = TransactionLayer()
    txn = _server(layer, request("INVITE"))
    layer.send_response(txn, response(txn.request, 486, to_tag="srv"), 0.1)
    layer.events()
    ack = request("ACK", to_tag="srv")  # same branch as the INVITE (§17.1.1.3)
    layer.receive_request(ack, SRC, 0.2)
    assert layer.events() == []
    assert txn.state is ISTState.CONFIRMED
    layer.receive_request(ack, SRC, 0.3)  # retransmitted ACK: absorbed too
    assert layer.events() == []


def test_ack_for_2xx_is_a_new_request() -> None:
    layer = TransactionLayer()
    txn = _server(layer, request("INVITE"))
    layer.send_response(txn, response(txn.request, 200, to_tag="srv"), 0.1)
    layer.events()
    ack = request("ACK", branch="z9hG4bK-ack", to_tag="srv")  # new branch (§13.2.2.4)
    layer.receive_request(ack, SRC, 0.2)
    assert layer.events() == [AckReceived(ack, SRC, None)]


def test_ack_matching_an_accepted_invite_goes_to_the_tu() -> None:
    layer = TransactionLayer()
    txn = _server(layer, request("INVITE"))
    layer.send_response(txn, response(txn.request, 200, to_tag="srv"), 0.1)
    layer.events()
    ack = request("ACK", to_tag="srv")  # reuses the INVITE branch
    layer.receive_request(ack, SRC, 0.2)
    assert layer.events() == [AckReceived(ack, SRC, txn)]  # RFC 6026 Figure 7
    assert txn.state is ISTState.ACCEPTED


def test_invite_retransmission_absorbed_in_accepted_and_2xx_pass_through() -> None:
    layer = TransactionLayer()
    txn = _server(layer, request("INVITE"))
    ok1 = response(txn.request, 200, to_tag="fork1")
    ok2 = response(txn.request, 200, to_tag="fork2")
    layer.send_response(txn, ok1, 0.1)
    layer.events()
    layer.receive_request(request("INVITE"), SRC, 0.2)
    assert layer.events() == []  # RFC 6026: absorbed, the UAS retransmits its 2xx itself
    layer.send_response(txn, ok2, 0.3)
    layer.send_response(txn, ok1, 0.4)  # a 2xx retransmission from the TU
    assert sends(layer.events()) == [ok2.to_bytes(), ok1.to_bytes()]


def test_cancel_is_matched_to_its_invite_and_has_its_own_transaction() -> None:
    layer = TransactionLayer()
    inv = _server(layer, request("INVITE"))
    layer.events()
    cancel = request("CANCEL")  # same branch, method CANCEL (§9.1)
    layer.receive_request(cancel, SRC, 1.0)
    assert layer.events() == [CancelReceived(cancel, SRC, inv)]
    ctx = layer.create_server_transaction(cancel, SRC, 1.0)
    assert ctx is not inv and layer.events() == []  # no 100 Trying for CANCEL
    ok = response(cancel, 200)
    layer.send_response(ctx, ok, 1.0)
    layer.receive_request(request("CANCEL"), SRC, 1.5)  # retransmitted CANCEL
    assert sends(layer.events()) == [ok.to_bytes(), ok.to_bytes()]
    assert inv.state is ISTState.PROCEEDING  # the TU answers 487 itself
    assert layer.cancel_target(cancel) is inv


def test_cancel_without_a_matching_invite() -> None:
    layer = TransactionLayer()
    _server(layer, request("INVITE", branch="z9hG4bK-other"))
    layer.events()
    cancel = request("CANCEL")
    layer.receive_request(cancel, SRC, 1.0)
    assert layer.events() == [CancelReceived(cancel, SRC, None)]


# ---------------------------------------------------------------- server side, RFC 2543


def test_rfc2543_invite_retransmission_and_ack_by_to_tag() -> None:
    layer = TransactionLayer()
    txn = _server(layer, request("INVITE", branch=None, from_tag=None))
    layer.events()
    layer.receive_request(request("INVITE", branch=None, from_tag=None), SRC, 0.1)
    assert [first_line(d) for d in sends(layer.events())] == ["SIP/2.0 100 Trying"]
    layer.send_response(txn, response(txn.request, 404, to_tag="srv"), 0.2)
    layer.events()
    wrong = request("ACK", branch=None, from_tag=None, to_tag="not-ours")
    layer.receive_request(wrong, SRC, 0.3)
    assert layer.events() == [AckReceived(wrong, SRC, None)]
    assert txn.state.name == "COMPLETED"
    ack = request("ACK", branch=None, from_tag=None, to_tag="srv")
    layer.receive_request(ack, SRC, 0.3)
    assert layer.events() == []
    assert txn.state is ISTState.CONFIRMED


@pytest.mark.parametrize(
    "change",
    [
        {"uri": "sip:carol@example.com"},
        {"call_id": "another@example.com"},
        {"from_tag": "other"},
        {"cseq": 2},
        {"sent_by": "other.example.com:5060"},
        {"to_tag": "x"},
    ],
)
def test_rfc2543_fields_each_take_part(change: dict[str, object]) -> None:
    layer = TransactionLayer()
    _server(layer, request("OPTIONS", branch="1234"))
    other = request("OPTIONS", branch="1234", **change)  # type: ignore[arg-type]
    layer.receive_request(other, SRC, 0.1)
    assert layer.events() == [RequestReceived(other, SRC)]


def test_rfc2543_cancel_targets_the_invite() -> None:
    layer = TransactionLayer()
    inv = _server(layer, request("INVITE", branch=None))
    cancel = request("CANCEL", branch=None)
    layer.receive_request(cancel, SRC, 1.0)
    assert layer.events()[-1] == CancelReceived(cancel, SRC, inv)


def test_rfc4475_bare_cookie_branch_falls_back_to_rfc2543() -> None:
    """RFC 4475 §3.2.1: two requests sharing the branch "z9hG4bK" are still distinct."""
    data = (DATA / "badbranch.dat").read_bytes()
    first = parse_req(data)
    second = parse_req(data.replace(b"badbranch.sadonfo", b"other.sadonfo"))
    assert first.vias[0].branch == second.vias[0].branch == "z9hG4bK"
    layer = TransactionLayer()
    txn = _server(layer, first)
    assert isinstance(txn.key, LegacyKey)
    layer.receive_request(second, SRC, 0.1)
    assert layer.events() == [RequestReceived(second, SRC)]
    layer.receive_request(parse_req(data), SRC, 0.2)  # a real retransmission
    assert layer.events() == []


def test_rfc4475_inv2543_request_gets_a_legacy_transaction() -> None:
    data = (DATA / "inv2543.dat").read_bytes()
    req = parse_req(data)
    layer = TransactionLayer()
    txn = _server(layer, req)
    assert isinstance(txn.key, LegacyKey)
    layer.events()
    layer.receive_request(parse_req(data), SRC, 0.5)
    assert [first_line(d) for d in sends(layer.events())] == ["SIP/2.0 100 Trying"]


# ---------------------------------------------------------------- client side


def test_response_matched_by_branch_and_cseq_method() -> None:
    layer = TransactionLayer()
    inv = request("INVITE")
    ict = layer.send_request(inv, "dest", 0.0)
    layer.receive_response(response(inv, 180), "dest", 0.1)
    cancel_txn = layer.cancel(ict, 0.2)
    assert cancel_txn is not None
    layer.events()
    cancel_ok = response(cancel_txn.request, 200)
    layer.receive_response(cancel_ok, "dest", 0.3)
    out = others(layer.events())
    assert out == [ResponseReceived(cancel_ok, "dest", cancel_txn)]


def test_response_without_a_transaction_is_stray() -> None:
    layer = TransactionLayer()
    layer.send_request(request("INVITE"), "dest", 0.0)
    layer.events()
    for stray in (
        response(request("INVITE", branch="z9hG4bK-unknown"), 200),
        response(request("INVITE"), 200, cseq_method="BYE"),
    ):
        layer.receive_response(stray, "peer", 0.1)
        assert layer.events() == [StrayResponseReceived(stray, "peer")]
