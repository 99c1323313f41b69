"""Pure REGISTER processing (RFC 3261 §10.3 steps 6-8, RFC 3327, RFC 5626) on a manual clock."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reg_support import ALICE, FLOW, TCP_FLOW, contacts_of, header, register

from sipedge.registrar import Binding, RegistrarPolicy, aor_of, apply_register
from sipedge.sip.message import Request
from sipedge.sip.uri import parse_uri
from sipedge.transport.base import Flow

POLICY = RegistrarPolicy()
T0 = 1_000_000.0
PHONE = "<sip:alice@198.51.100.7:40000>"
LAPTOP = "<sip:alice@203.0.113.5:5062;transport=tcp>"


def apply(
    req: Request,
    existing: list[Binding] | None = None,
    now: float = T0,
    policy: RegistrarPolicy = POLICY,
    flow: Flow = FLOW,
) -> tuple[int, list[tuple[str, str]], list[Binding] | None]:
    out = apply_register(req, existing or [], flow, now, policy)
    return out.status, out.headers, out.bindings


def stored(req: Request, existing: list[Binding] | None = None, now: float = T0) -> list[Binding]:
    """Apply a REGISTER that must succeed and change the bindings; return the new set."""
    status, _, bindings = apply(req, existing, now)
    assert status == 200 and bindings is not None
    return bindings


# ------------------------------------------------------------------ add / refresh / remove


def test_add_binding_records_everything() -> None:
    out = apply_register(register(PHONE), [], TCP_FLOW, T0, POLICY)
    assert (out.status, out.reason) == (200, "OK")
    assert out.bindings is not None
    (b,) = out.bindings
    assert b.aor == ALICE
    assert b.contact == "sip:alice@198.51.100.7:40000"
    assert b.expires_at == T0 + 3600  # policy default: no Expires anywhere
    assert (b.q, b.call_id, b.cseq) == (1.0, "reg-1@ua", 1)
    assert (b.instance, b.reg_id, b.path) == (None, None, ())
    assert b.flow == TCP_FLOW
    assert (b.transport, b.local, b.remote, b.conn_id) == (
        "tcp",
        ("192.0.2.1", 5060),
        ("198.51.100.8", 51000),
        42,
    )
    assert b.received == "198.51.100.8:51000"
    assert (b.user_agent, b.registered_at) == ("TestPhone/1.0", T0)
    assert contacts_of(out.headers) == ["<sip:alice@198.51.100.7:40000>;expires=3600"]
    assert header(out.headers, "Supported") is None


def test_expires_header_and_contact_param() -> None:
    req = register(PHONE, f"{LAPTOP};expires=120", expires=600)
    a, b = stored(req)
    assert a.expires_at == T0 + 600  # Expires header
    assert b.expires_at == T0 + 120  # the contact's own parameter wins (§10.3 step 7)


def test_refresh_updates_expiry_and_flow_but_keeps_registered_at() -> None:
    first = stored(register(PHONE, expires=600))
    later = T0 + 300
    (b,) = stored(register(PHONE, cseq=2, expires=600), first, now=later)
    assert b.expires_at == later + 600
    assert b.cseq == 2
    assert b.registered_at == T0
    status, _, bindings = apply(register(PHONE, cseq=3), first, now=later, flow=TCP_FLOW)
    assert status == 200 and bindings is not None
    assert bindings[0].flow == TCP_FLOW


def test_refresh_matches_equivalent_uri() -> None:
    # RFC 3261 §19.1.4: host case and parameter order do not matter.
    first = stored(register("<sip:alice@HOST.example.com;a=1;b=2>"))
    (b,) = stored(register("<sip:alice@host.example.com;b=2;a=1>", cseq=2), first)
    assert b.contact == "sip:alice@host.example.com;b=2;a=1"


@pytest.mark.parametrize(
    "req",
    [
        register(f"{PHONE};expires=0", cseq=2),
        register(PHONE, cseq=2, expires=0),
    ],
)
def test_remove_by_expires_zero(req: Request) -> None:
    first = stored(register(PHONE, LAPTOP))
    status, headers, bindings = apply(req, first)
    assert status == 200
    assert bindings is not None and [b.contact for b in bindings] == [first[1].contact]
    assert len(contacts_of(headers)) == 1


def test_removing_an_unknown_contact_changes_nothing() -> None:
    first = stored(register(PHONE))
    status, headers, bindings = apply(register(f"{LAPTOP};expires=0", cseq=2), first)
    assert (status, bindings) == (200, None)
    assert len(contacts_of(headers)) == 1


def test_query_without_contact_lists_bindings_and_changes_nothing() -> None:
    first = stored(register(PHONE, f"{LAPTOP};expires=600"))
    status, headers, bindings = apply(register(cseq=2), first, now=T0 + 100)
    assert (status, bindings) == (200, None)
    assert contacts_of(headers) == [
        "<sip:alice@198.51.100.7:40000>;expires=3500",
        "<sip:alice@203.0.113.5:5062;transport=tcp>;expires=500",
    ]


def test_remaining_expiry_decreases_with_the_clock() -> None:
    first = stored(register(PHONE, expires=3600))
    seen = []
    for dt in (0, 1, 60.4, 3599):
        _, headers, _ = apply(register(cseq=2), first, now=T0 + dt)
        seen.append(contacts_of(headers)[0].rsplit("=", 1)[1])
    assert seen == ["3600", "3599", "3540", "1"]


def test_expired_bindings_are_not_listed_nor_kept() -> None:
    first = stored(register(f"{PHONE};expires=60", LAPTOP))
    now = T0 + 60  # the phone's binding expires exactly now
    status, headers, bindings = apply(register(cseq=2), first, now=now)
    assert (status, bindings) == (200, None)
    assert contacts_of(headers) == ["<sip:alice@203.0.113.5:5062;transport=tcp>;expires=3540"]
    new = stored(register("<sip:alice@192.0.2.99>", cseq=3), first, now=now)
    assert [b.contact for b in new] == [first[1].contact, "sip:alice@192.0.2.99"]


# ------------------------------------------------------------------ Contact: *


def test_wildcard_removes_all_bindings() -> None:
    first = stored(register(PHONE, LAPTOP, call_id="other"))
    status, headers, bindings = apply(register("*", cseq=1, expires=0), first)
    assert (status, bindings, contacts_of(headers)) == (200, [], [])


@pytest.mark.parametrize(
    "req",
    [
        register("*"),
        register("*", expires=3600),
        register("*", PHONE, expires=0),
        register("*, <sip:alice@192.0.2.9>", expires=0),
    ],
)
def test_wildcard_needs_expires_zero_and_no_other_contact(req: Request) -> None:
    first = stored(register(PHONE))
    status, _, bindings = apply(req, first)
    assert (status, bindings) == (400, None)


def test_wildcard_ignored_for_bindings_a_newer_request_wrote() -> None:
    first = stored(register(PHONE, cseq=5))
    first += stored(register(LAPTOP, call_id="other", cseq=9))
    status, headers, bindings = apply(register("*", cseq=4, expires=0), first)
    assert status == 200
    assert bindings is not None and [b.contact for b in bindings] == [first[0].contact]
    assert len(contacts_of(headers)) == 1
    _, _, bindings = apply(register("*", cseq=6, expires=0), first)
    assert bindings == []


# ------------------------------------------------------------------ ordering (§10.3 step 7)


def test_older_cseq_in_same_call_id_cannot_undo_newer() -> None:
    first = stored(register(PHONE, cseq=10))
    for cseq in (9, 10):  # lower and equal CSeq: ignored, not an error
        status, headers, bindings = apply(register(PHONE, cseq=cseq, expires=0), first)
        assert (status, bindings) == (200, None)
        assert contacts_of(headers) == ["<sip:alice@198.51.100.7:40000>;expires=3600"]


def test_different_call_id_can_remove_with_lower_cseq() -> None:
    first = stored(register(PHONE, cseq=10))
    _, _, bindings = apply(register(PHONE, call_id="new-boot", cseq=1, expires=0), first)
    assert bindings == []


def test_ignored_contact_does_not_block_the_others() -> None:
    first = stored(register(PHONE, cseq=10))
    later = register(f"{PHONE};expires=0", LAPTOP, cseq=3)
    (status, _, bindings) = apply(later, first)
    assert status == 200 and bindings is not None
    assert [b.contact for b in bindings] == [
        first[0].contact,
        "sip:alice@203.0.113.5:5062;transport=tcp",
    ]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.sampled_from([120, 600, 1800]), min_size=1, max_size=6).flatmap(
        lambda exp: st.permutations(list(enumerate(exp, start=1)))
    )
)
def test_reordered_refreshes_end_in_the_newest_state(order: list[tuple[int, int]]) -> None:
    # Refreshes of one Call-ID delivered in any order: the highest CSeq decides. (A removal
    # is not remembered once done, as in RFC 3261, so only refreshes are permuted here.)
    bindings: list[Binding] = []
    for cseq, expires in order:
        _, _, new = apply(register(PHONE, cseq=cseq, expires=expires), bindings)
        bindings = bindings if new is None else new
    newest_cseq, newest_expires = max(order)
    assert [(b.cseq, b.expires_at) for b in bindings] == [(newest_cseq, T0 + newest_expires)]


# ------------------------------------------------------------------ expiry limits


def test_too_brief_gives_423_with_min_expires_and_changes_nothing() -> None:
    first = stored(register(PHONE))
    out = apply_register(register(LAPTOP, f"{PHONE};expires=30", cseq=2), first, FLOW, T0, POLICY)
    assert (out.status, out.reason, out.bindings) == (423, "Interval Too Brief", None)
    assert header(out.headers, "Min-Expires") == "60"
    status, _, _ = apply(register(PHONE, cseq=3, expires=59), first)
    assert status == 423
    status, _, _ = apply(register(PHONE, cseq=4, expires=60), first)
    assert status == 200


@pytest.mark.parametrize("expires", [3601, 99999, 2**32 - 1])
def test_long_expiry_is_clamped(expires: int) -> None:
    (b,) = stored(register(PHONE, expires=expires))
    assert b.expires_at == T0 + 3600
    (b,) = stored(register(f"{PHONE};expires={expires}"))
    assert b.expires_at == T0 + 3600


def test_huge_contact_expires_is_clamped() -> None:
    (b,) = stored(register(f"{PHONE};expires=000000000000000099999999999"))
    assert b.expires_at == T0 + 3600


@pytest.mark.parametrize("param", ["expires=abc", "expires=-5", "expires=1.5", "expires"])
def test_malformed_contact_expires_is_400(param: str) -> None:
    status, _, bindings = apply(register(f"{PHONE};{param}"))
    assert (status, bindings) == (400, None)


def test_malformed_expires_header_is_400() -> None:
    status, _, _ = apply(register(PHONE, expires="soon"))
    assert status == 400


# ------------------------------------------------------------------ q-values


def test_q_is_stored_and_listed() -> None:
    a, b = stored(register(f"{PHONE};q=0.5", f"{LAPTOP};q=1.000"))
    assert (a.q, b.q) == (0.5, 1.0)
    _, headers, _ = apply(register(cseq=2), [a, b])
    assert contacts_of(headers) == [
        "<sip:alice@198.51.100.7:40000>;expires=3600;q=0.5",
        "<sip:alice@203.0.113.5:5062;transport=tcp>;expires=3600",
    ]


@pytest.mark.parametrize("q", ["1.5", "2", "abc", "0.1234", "-0.1", "1.001", ""])
def test_invalid_q_is_400(q: str) -> None:
    param = "q" if q == "" else f"q={q}"
    status, _, bindings = apply(register(f"{PHONE};{param}"))
    assert (status, bindings) == (400, None)


@pytest.mark.parametrize("q", ["0", "0.", "0.001", "1", "1.0"])
def test_valid_q(q: str) -> None:
    (b,) = stored(register(f"{PHONE};q={q}"))
    assert b.q == float(q)


# ------------------------------------------------------------------ contact limit


def test_contact_limit_gives_403() -> None:
    policy = RegistrarPolicy(max_contacts=2)
    first = stored(register(PHONE, LAPTOP))
    out = apply_register(register("<sip:alice@192.0.2.50>", cseq=2), first, FLOW, T0, policy)
    assert (out.status, out.reason, out.bindings) == (403, "Too many registered contacts", None)
    out = apply_register(register(PHONE, cseq=3), first, FLOW, T0, policy)  # refresh: fine
    assert out.status == 200


def test_contact_limit_never_refuses_refresh_or_removal_when_over() -> None:
    first = stored(register(PHONE, LAPTOP, "<sip:alice@192.0.2.50>"))
    policy = RegistrarPolicy(max_contacts=1)  # limit lowered after they registered
    out = apply_register(register(PHONE, cseq=2), first, FLOW, T0, policy)
    assert out.status == 200
    swap = register(f"{PHONE};expires=0", "<sip:alice@192.0.2.77>", cseq=3)
    assert apply_register(swap, first, FLOW, T0, policy).status == 200


def test_overwrite_oldest_replaces_the_oldest_binding() -> None:
    policy = RegistrarPolicy(max_contacts=2, overwrite_oldest=True)
    first = stored(register(LAPTOP, call_id="b"), now=T0)
    first = stored(register(PHONE, call_id="a"), first, now=T0 + 10)
    assert [b.registered_at for b in first] == [T0, T0 + 10]
    out = apply_register(
        register("<sip:alice@192.0.2.50>", call_id="c"), first, FLOW, T0 + 20, policy
    )
    assert out.status == 200 and out.bindings is not None
    assert [b.contact for b in out.bindings] == [first[1].contact, "sip:alice@192.0.2.50"]
    too_many = register(*(f"<sip:alice@192.0.2.{i}>" for i in range(3)), call_id="d")
    assert apply_register(too_many, first, FLOW, T0, policy).status == 403


# ------------------------------------------------------------------ RFC 5626 instance / reg-id

INSTANCE = '"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"'


def test_instance_and_reg_id_replace_the_flow_binding() -> None:
    first = stored(register(f"{PHONE};+sip.instance={INSTANCE};reg-id=1"))
    assert (first[0].instance, first[0].reg_id, first[0].outbound) == (INSTANCE, 1, True)
    moved = register(f"<sip:alice@192.0.2.200:7000>;+sip.instance={INSTANCE};reg-id=1", call_id="x")
    status, headers, bindings = apply(moved, first, flow=TCP_FLOW)
    assert status == 200 and bindings is not None
    assert [(b.contact, b.flow) for b in bindings] == [("sip:alice@192.0.2.200:7000", TCP_FLOW)]
    assert header(headers, "Supported") == "outbound"
    assert contacts_of(headers) == [
        f"<sip:alice@192.0.2.200:7000>;expires=3600;+sip.instance={INSTANCE};reg-id=1"
    ]


def test_second_reg_id_is_a_second_binding_even_with_the_same_uri() -> None:
    first = stored(register(f"{PHONE};+sip.instance={INSTANCE};reg-id=1"))
    second = register(f"{PHONE};+sip.instance={INSTANCE};reg-id=2", call_id="flow2")
    bindings = stored(second, first)
    assert [b.reg_id for b in bindings] == [1, 2]
    # a plain (RFC 3261) removal by URI removes both
    _, _, after = apply(register(f"{PHONE};expires=0", call_id="z"), bindings)
    assert after == []


def test_reg_id_without_instance_is_ignored() -> None:
    (b,) = stored(register(f"{PHONE};reg-id=1"))
    assert (b.instance, b.reg_id) == (None, None)
    _, headers, _ = apply(register(f"{PHONE};reg-id=1"))
    assert header(headers, "Supported") is None


@pytest.mark.parametrize("reg_id", ["0", "abc", "2147483648", ""])
def test_invalid_reg_id_is_400(reg_id: str) -> None:
    param = "reg-id" if reg_id == "" else f"reg-id={reg_id}"
    status, _, _ = apply(register(f"{PHONE};+sip.instance={INSTANCE};{param}"))
    assert status == 400


# ------------------------------------------------------------------ Path (RFC 3327)

PATHS = ["Path: <sip:edge1.example.net;lr>", "Path: <sip:edge2.example.net;lr;ob>"]


def test_path_stored_and_echoed_with_supported_path() -> None:
    req = register(PHONE, extra=[*PATHS, "Supported: path, outbound"])
    status, headers, bindings = apply(req)
    assert status == 200 and bindings is not None
    assert bindings[0].path == ("<sip:edge1.example.net;lr>", "<sip:edge2.example.net;lr;ob>")
    assert [v for n, v in headers if n == "Path"] == list(bindings[0].path)
    assert header(headers, "Supported") == "path"


def test_path_stored_but_not_echoed_without_supported_path() -> None:
    status, headers, bindings = apply(register(PHONE, extra=PATHS))
    assert status == 200 and bindings is not None
    assert len(bindings[0].path) == 2
    assert header(headers, "Path") is None and header(headers, "Supported") is None


def test_path_strict_refuses_path_without_support() -> None:
    strict = RegistrarPolicy(path_strict=True)
    out = apply_register(register(PHONE, extra=PATHS), [], FLOW, T0, strict)
    assert (out.status, out.bindings) == (420, None)
    assert header(out.headers, "Unsupported") == "path"
    ok = register(PHONE, extra=[*PATHS, "Supported: path"])
    assert apply_register(ok, [], FLOW, T0, strict).status == 200


def test_refresh_without_path_clears_the_stored_path() -> None:
    first = stored(register(PHONE, extra=PATHS))
    (b,) = stored(register(PHONE, cseq=2), first)
    assert b.path == ()


# ------------------------------------------------------------------ AOR


@pytest.mark.parametrize(
    ("uri", "aor"),
    [
        ("sip:alice@Example.COM", "sip:alice@example.com"),
        ("sips:alice@example.com:5061;transport=tls", "sip:alice@example.com"),
        ("sip:%61lice@example.com", "sip:alice@example.com"),
        ("sip:Alice@example.com", "sip:Alice@example.com"),
        ("sip:example.com", "sip:example.com"),
    ],
)
def test_aor_normalisation(uri: str, aor: str) -> None:
    assert aor_of(parse_uri(uri)) == aor


def test_non_sip_aor_is_refused() -> None:
    status, _, bindings = apply(register(PHONE, to="tel:+15551234"))
    assert (status, bindings) == (416, None)


def test_aor_comes_from_to_header() -> None:
    (b,) = stored(register(PHONE, to="sips:Bob@EXAMPLE.org:5061"))
    assert b.aor == "sip:Bob@example.org"
