"""Contact matching by comparison key (RFC 3261 §10.3 step 6, §19.1.4): the keys must
give exactly the answer of uri_equal, with or without a key on the stored binding."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reg_support import FLOW, register

from sipedge.registrar import Binding, RegistrarPolicy, apply_register
from sipedge.registrar.match import same_contact
from sipedge.sip.errors import ParseError
from sipedge.sip.uri import URI, parse_uri, uri_equal, uri_key, uri_keys_equal

T0 = 1_000_000.0

# Pairs that differ in one way §19.1.4 cares about, or one way it does not.
CORPUS = [
    "sip:alice@example.com",
    "sip:alice@EXAMPLE.com",
    "sips:alice@example.com",
    "sip:Alice@example.com",
    "sip:%61lice@example.com",
    "sip:al%40ice@example.com",
    "sip:al%2fice@example.com",
    "sip:al/ice@example.com",
    "sip:alice:pw@example.com",
    "sip:alice:@example.com",
    "sip:alice:p%77@example.com",
    "sip:example.com",
    "sip:alice@example.com:5060",
    "sip:alice@example.com:05060",
    "sip:alice@[::1]",
    "sip:alice@[0:0::1]",
    "sip:alice@[::1]:5060",
    "sip:alice@192.0.2.1",
    "sip:alice@example.com;transport=udp",
    "sip:alice@example.com;transport=UDP",
    "sip:alice@example.com;Transport=udp",
    "sip:alice@example.com;transport=tcp",
    "sip:alice@example.com;transport=udp;transport=tcp",
    "sip:alice@example.com;maddr=192.0.2.9",
    "sip:alice@example.com;user=phone",
    "sip:alice@example.com;ob",
    "sip:alice@example.com;ob;rinstance=1",
    "sip:alice@example.com;rinstance=1",
    "sip:alice@example.com;rinstance=2",
    "sip:alice@example.com;RINSTANCE=1",
    "sip:alice@example.com;rinstance=1;transport=udp",
    "sip:alice@example.com;transport=udp;rinstance=2",
    "sip:alice@example.com;lr",
    "sip:alice@example.com?subject=hi",
    "sip:alice@example.com?Subject=hi",
    "sip:alice@example.com?subject=Hi",
    "sip:alice@example.com?a=1&b=2",
    "sip:alice@example.com?b=2&a=1",
    "sip:alice@example.com?a=",
    "sip:alice@example.com;transport=udp?a=1",
    "tel:+1-555-0100",
    "tel:+15550100",
    "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
]


def binding_for(text: str, *, keyed: bool = True) -> Binding:
    """A stored binding of Contact ``text``, with its key or (as loaded) without."""
    uri = parse_uri(text)
    key = uri_key(uri, str(uri)) if keyed else None
    return Binding("sip:alice@example.com", str(uri), T0 + 60, contact_key=key)


def matches(stored: str, sent: str, *, keyed: bool = True) -> bool:
    uri = parse_uri(sent)
    text = str(uri)
    return same_contact(binding_for(stored, keyed=keyed), uri, text, uri_key(uri, text))


def test_keys_agree_with_uri_equal() -> None:
    pairs = list(itertools.product(CORPUS, repeat=2))
    expected = {(a, b): uri_equal(parse_uri(a), parse_uri(b)) for a, b in pairs}
    assert sum(expected.values()) > 2 * len(CORPUS)  # the corpus has equivalent pairs
    assert {p: matches(*p) for p in pairs} == expected
    assert {p: matches(*p, keyed=False) for p in pairs} == expected


def _uri_text(parts: tuple[str, str, str, str, list[str], str]) -> str:
    scheme, userinfo, host, port, params, headers = parts
    return f"{scheme}:{userinfo}{host}{port}{''.join(params)}{headers}"


URIS = st.tuples(
    st.sampled_from(["sip", "sips"]),
    st.sampled_from(["", "bob@", "Bob@", "b%6Fb@", "bob:x@", "bob:X@", "b%3bob@"]),
    st.sampled_from(["h.example", "H.EXAMPLE", "[2001:db8::1]", "[2001:DB8:0::1]"]),
    st.sampled_from(["", ":5060", ":5070"]),
    st.lists(
        st.sampled_from(
            [
                ";transport=tcp",
                ";transport=TCP",
                ";ttl=1",
                ";method=INVITE",
                ";ob",
                ";x=1",
                ";x=2",
                ";X=1",
                ";y",
                ";maddr=h2.example",
                ";user=ip",
            ]
        ),
        max_size=3,
    ),
    st.sampled_from(["", "?a=1", "?A=1", "?a=1&b=%41", "?b=A&a=1"]),
).map(_uri_text)


@settings(max_examples=400, deadline=None)
@given(URIS, URIS)
def test_keys_agree_with_uri_equal_on_generated_uris(a: str, b: str) -> None:
    expected = uri_equal(parse_uri(a), parse_uri(b))
    assert matches(a, b) is expected
    assert matches(b, a) is expected


def test_a_plain_contact_is_its_own_key() -> None:
    # No extra string per binding for the usual Contact (memory, see test_reg_memory).
    text = "sip:alice@198.51.100.7:40000"
    uri = parse_uri(text)
    assert uri_key(uri, text) is text
    assert uri_key(uri) == text  # without the text it is built, equal
    assert uri_key(parse_uri("sip:alice@Host.example")) == "sip:alice@host.example"
    assert uri_key(parse_uri("sip:a@h;ob")) == "sip:a@h;"  # other parameters: marked
    assert uri_key(parse_uri("sip:a@h;transport=TCP;x")) == "sip:a@h;transport=tcp;"
    assert uri_key(parse_uri("tel:+15550100")) is None


def test_keys_decide_unless_both_have_other_parameters() -> None:
    assert uri_keys_equal("sip:a@h", "sip:a@h") is True
    assert uri_keys_equal("sip:a@h", "sip:a@h;") is True  # ;ob on one side only
    assert uri_keys_equal("sip:a@h;", "sip:b@h") is False
    assert uri_keys_equal("sip:a@h;", "sip:a@h;") is None  # ;x=1 vs ;x=2 needs the URIs
    assert uri_keys_equal("sip:a@h;", "sip:b@h;") is False


def test_an_unreadable_stored_contact_without_key_is_still_an_error() -> None:
    bad = Binding("sip:alice@example.com", "sip:alice@exa mple", T0)
    uri = parse_uri("sip:alice@example.com")
    with pytest.raises(ParseError):
        same_contact(bad, uri, str(uri), uri_key(uri, str(uri)))


def test_stored_contacts_are_parsed_once_per_text_with_a_cache() -> None:
    stored = binding_for("sip:alice@example.com;x=1", keyed=False)
    sent = parse_uri("sip:alice@example.com;x=2")
    parsed: dict[str, URI] = {}
    assert not same_contact(stored, sent, str(sent), None, parsed)
    assert list(parsed) == [stored.contact]
    parsed[stored.contact] = parse_uri("sip:alice@example.com;x=2")  # the cache is used
    assert same_contact(stored, sent, str(sent), None, parsed)


# ------------------------------------------------------------------ through apply_register


def apply(req_contacts: list[str], existing: list[Binding], cseq: int) -> list[Binding]:
    out = apply_register(register(*req_contacts, cseq=cseq), existing, FLOW, T0, RegistrarPolicy())
    assert out.status == 200
    return existing if out.bindings is None else out.bindings


@pytest.mark.parametrize("keyed", [True, False])
def test_refresh_by_an_equivalent_uri_with_and_without_stored_keys(keyed: bool) -> None:
    first = apply(["<sip:alice@HOST.example;transport=TCP;ob>", "<sip:alice@192.0.2.2>"], [], 1)
    assert first[0].contact_key == "sip:alice@host.example;transport=tcp;"
    assert first[1].contact_key is first[1].contact
    if not keyed:  # as loaded from SQLite or Redis
        first = [dataclasses.replace(b, contact_key=None) for b in first]
    again = apply(["<sip:alice@host.example;rinstance=7;transport=tcp>"], first, 2)
    assert [b.contact for b in again] == [
        "sip:alice@host.example;rinstance=7;transport=tcp",
        "sip:alice@192.0.2.2",
    ]
    other = apply(["<sip:alice@host.example;transport=udp>"], again, 3)  # must-match differs
    assert len(other) == 3


def test_the_key_is_derived_data_not_identity() -> None:
    b = binding_for("sip:alice@example.com;ob")
    assert b == dataclasses.replace(b, contact_key=None)  # remove_binding compares so
    assert hash(b) == hash(dataclasses.replace(b, contact_key=None))
    assert "contact_key" not in repr(b)
