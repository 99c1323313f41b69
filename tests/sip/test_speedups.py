"""The C accelerator and the pure-Python parser give the same messages and the same errors.

Differential tests: Hypothesis generates messages (usual and unusual shapes of every eagerly
read header, odd spellings, limits) and mutates the RFC 4475 messages; each is parsed on
both paths and everything a message exposes is compared, ParseError reason and status
included. The accelerator must accept the usual shapes (or these tests would compare the
pure path with itself), hand the rest to Python, and never raise or crash on any input.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipedge.sip import _accel
from sipedge.sip.errors import ParseError
from sipedge.sip.hdr.via import parse_via
from sipedge.sip.headers import COMPACT_FORMS, header_key
from sipedge.sip.message import Field, Message, Request, Response, _split_head
from sipedge.sip.parser import DEFAULT_LIMITS, Limits, parse_message

BUILT = _accel.SPEEDUPS
BOTH_PATHS_INSIDE = True  # conftest: these tests switch paths themselves
if BUILT is None:
    pytest.skip("C accelerator not built (or SIPEDGE_PURE=1)", allow_module_level=True)

DATA = Path(__file__).parent.parent / "data" / "rfc4475"
SEEDS = [p.read_bytes() for p in sorted(DATA.glob("*.dat"))]

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\n"
)


@contextmanager
def path(name: str) -> Iterator[None]:
    saved = _accel.SPEEDUPS
    _accel.SPEEDUPS = BUILT if name == "c" else None
    try:
        yield
    finally:
        _accel.SPEEDUPS = saved


def attempt(fn: Callable[[], object]) -> object:
    try:
        return fn()
    except ParseError as e:
        return ("ParseError", type(e).__name__, e.reason, e.status_hint)


def field_tuple(f: Field) -> tuple[str, str, str, int, str]:
    return (f.key, f.name, f.raw, f.vstart, f.value)


def exposed(m: Message) -> dict[str, object]:
    """Everything a parsed message shows, lazily decoded parts included."""
    out: dict[str, object] = {
        "type": type(m).__name__,
        "version": m.version,
        "vias": [
            (str(v), v.transport, v.host, v.port, v.params.items(), v.protocol) for v in m.vias
        ],
        "routes": [str(r) for r in m.routes],
        "call_id": m.call_id,
        "cseq": (m.cseq.number, m.cseq.method),
        "tags": (m.from_tag, m.to_tag),
        "from": attempt(lambda: str(m.from_)),
        "to": attempt(lambda: str(m.to)),
        "max_forwards": m.max_forwards,
        "content_length": m.content_length,
        "body": m.body,
        "bytes": m.to_bytes(),
        "dirty": m.dirty,
        "size": m.size_hint,
        "fields": [field_tuple(f) for f in m.fields],
        "lists": [attempt(lambda n=n: m.header_list(n)) for n, _ in m.iter_headers()],
        "contacts": attempt(lambda: [str(c) for c in m.contacts] if m.contacts != "*" else "*"),
        "record_routes": attempt(lambda: [str(r) for r in m.record_routes]),
        "expires": attempt(lambda: m.expires),
        "content_type": m.content_type,
    }
    if isinstance(m, Request):
        out["request"] = (m.method, m.uri_text, attempt(lambda: str(m.uri)))
    else:
        assert isinstance(m, Response)
        out["response"] = (m.status, m.reason, m.method)
    copy = m.copy()
    out["copy"] = copy.to_bytes()

    def edit() -> bytes:
        m.set_max_forwards(5)
        m.push_via("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKedit")
        m.add_record_route("<sip:192.0.2.1;lr>")
        if m.routes:
            m.pop_route()
        return m.to_bytes()

    out["edited"] = attempt(edit)
    out["copy_after_edit"] = copy.to_bytes()
    return out


def outcome(name: str, data: bytes, limits: Limits = DEFAULT_LIMITS) -> object:
    with path(name):
        try:
            m = parse_message(data, limits)
        except ParseError as e:
            return ("ParseError", type(e).__name__, e.reason, e.status_hint)
        return exposed(m)


def accepted(data: bytes, limits: Limits = DEFAULT_LIMITS) -> bool:
    """Whether the accelerator handled ``data`` itself (rather than passing it on)."""
    assert BUILT is not None
    return BUILT.scan(data, limits.max_headers, limits.max_line_length, limits.max_vias) is not None


def check_same(data: bytes, limits: Limits = DEFAULT_LIMITS) -> None:
    result = outcome("c", data, limits)
    assert result == outcome("pure", data, limits)
    if isinstance(result, dict) and accepted(data, limits):
        # The Python splitter of an accelerated message gives the C splitter's fields.
        with path("c"):
            m = parse_message(data, limits)
        assert m._data is not None
        c_fields = [field_tuple(f) for f in m.fields]
        assert [field_tuple(f) for f in _split_head(m._data, m._hlen)] == c_fields


# ---------------------------------------------------------------- generated messages


class Pick:
    """Draws one of the usual values; in a noisy message now and then an odd one."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw
        self.noisy = draw(st.booleans())

    def __call__(self, usual: list[str], odd: list[str]) -> str:
        draw = self.draw
        # (Hypothesis favours the ends of a range: the middle value keeps odd ones rare.)
        if self.noisy and odd and draw(st.integers(0, 8)) == 4:
            return draw(st.sampled_from(odd))
        return draw(st.sampled_from(usual))


def via_value(pick: Pick) -> str:
    draw = pick.draw

    def one() -> str:
        proto = pick(["SIP/2.0/"], ["sip/2.0/", "SIP/3.0/", "SIP/2.0 /", "SIP/2.0/ "])
        transport = pick(["UDP", "TCP", "tls", "Ws", "x~y"], [""])
        gap = pick([" "], ["  ", "\t", ""])
        host = pick(
            ["pc33.atlanta.example.com", "192.0.2.1", "a-b.c", "host.", "h", "a--b9.x-1"],
            ["[2001:db8::1]", "[::1", "a..b", "-a", "a-", "x_y", "é", ".a"],
        )
        port = pick(["", ":5060", ":0", ":65535", ":09"], [":65536", ":123456", ":", ":x"])
        params = "".join(
            pick(
                [";branch=z9hG4bK1", ";rport", ";rport=5060", ";ttl=16", ";TTL=1",
                 ";received=192.0.2.9", ";maddr=[::1]", ";a=b", ";BRANCH=a", ";x~=y:z"],
                [";RPORT=x", ";rport=99999", ";ttl=300", ";branch", ";x=", " ;lr", ';x="q"',
                 ";rport=1;rport=abc", ";ttl=000001", ";rport=0x1"],
            )
            for _ in range(draw(st.integers(0, 3)))
        )  # fmt: skip
        return f"{proto}{transport}{gap}{host}{port}{params}"

    sep = pick([", ", ","], [" , ", ",,", ",\t"])
    return sep.join(one() for _ in range(draw(st.integers(1, 3))))


def name_addr(pick: Pick) -> str:
    draw = pick.draw

    display = pick(
        ["", "", "Bob ", "Bob  Smith ", '"Bob" ', '"" ', '"B o,b"'],
        ['"B\\"ob" ', '"Bob"', "Bob", "B@b ", '"B<b>" ', '"open '],
    )
    uri = pick(
        ["sip:bob@biloxi.example.com", "sips:b@h:5061", "tel:+1-555", "sip:a@b;lr", "urn:x:y"],
        ["sip:a@b?x=1", "http://x", "sip:", "1sip:x", "sip:a b", "sip:a@[::1]", "sip:a,b"],
    )
    shape = pick(["<>"], ["", "<", "><", "< >"])
    if shape == "<>":
        core = f"<{uri}>"
    elif shape == "< >":
        core = f"< {uri} >"
    elif shape == "><":
        core = f">{uri}<"
    else:
        core = shape + uri
    params = "".join(
        pick(
            [";tag=abc", ";TAG=Up", ";tag", ";x=1", ";x", ";expires=60", ";tag=a;tag=b"],
            [";tag=", " ;tag=sp", ';x="q;tag=no"', ";tag=a b", ";ta g=1", ";tag=[x]", ";"],
        )
        for _ in range(draw(st.integers(0, 3)))
    )
    return f"{display}{core}{params}"


def number(pick: Pick) -> str:
    return pick(
        ["0", "1", "70", "255", "007", "00000000000001", "4294967295", "2147483647"],
        ["256", "4294967296", "99999999999", "2147483648", "", "1a", "+1", "١", "7 0", "-1"],
    )


NAMES: dict[str, tuple[list[str], list[str]]] = {
    "via": (["Via", "v", "VIA"], ["vIa", "Via ", "Via\t"]),
    "from": (["From", "f"], ["FROM", "fRoM "]),
    "to": (["To", "t"], ["tO "]),
    "call-id": (["Call-ID", "i"], ["call-id", "CALL-Id", "Call-ID "]),
    "cseq": (["CSeq"], ["cseq", "CSEQ"]),
    "max-forwards": (["Max-Forwards"], ["max-forwards"]),
    "content-length": (["Content-Length", "l"], ["L", "content-LENGTH"]),
    "route": (["Route"], ["route", "ROUTE "]),
    "contact": (["Contact", "m"], ["CONTACT"]),
    "other": (
        ["X-Odd", "Subject", "s", "e", "o", "k", "User-Agent", "Allow", "Expires", "Record-Route",
         "Supported", "P-Asserted-Identity", "Www-Authenticate", "x-LOWER~"],
        ["Bad Name", "Ünï", "", "x:y", "A\x00"],
    ),
}  # fmt: skip


def header(pick: Pick, key: str, method: str) -> str:
    draw = pick.draw

    name = pick(*NAMES[key])
    if key == "via":
        value = via_value(pick)
    elif key in ("from", "to", "contact"):
        value = name_addr(pick)
    elif key == "route":
        value = ", ".join(name_addr(pick) for _ in range(draw(st.integers(1, 2))))
    elif key == "call-id":
        value = pick(["a84b4c76e66710@pc33", "x", "a b"], ["", "ünï@x", "\x01"])
    elif key == "cseq":
        m = pick([method], [method.lower(), "BYE", "", "IN VITE", "INVITE x"])
        gap = pick([" "], ["  ", "\t", ""])
        value = f"{number(pick)}{gap}{m}"
    elif key in ("max-forwards", "content-length"):
        value = number(pick)
    else:
        value = pick(["x", "a, b", '"q, r"', "60", "<sip:x>;q=1", "*"], ["", "é", "\x7f"])
    before = pick([""], [" ", "\t"])
    after = pick([" ", ""], ["  ", "\t", "   \t"])
    trail = pick([""], [" ", "\t"])
    return f"{name}{before}:{after}{value}{trail}"


@st.composite
def message(draw: st.DrawFn) -> tuple[bytes, Limits]:
    pick = Pick(draw)
    method = pick(["INVITE", "REGISTER", "BYE", "ACK", "FOO-bar"], ["inv ite", "INV\x00"])
    if draw(st.booleans()):
        uri = pick(
            ["sip:bob@x", "sips:a@b", "tel:+1", "sip:a?b@c", "urn:x", "sip:a@b\tc"],
            ["<sip:x>", "sip:a@c?x", "SIPS:b?c", ""],
        )
        version = pick(["SIP/2.0"], ["sip/2.0", "SIP/2.1", "SIP/02.0", "SIP/2.0 "])
        sep = pick([" "], ["  ", "\t"])
        start = f"{method}{sep}{uri} {version}"
    else:
        code = pick(["200", "100", "699", "180", "404"], ["099", "700", "20", "2000", "2x0"])
        reason = pick([" OK", " Busy Here", "", " ", "  two"], [" é", " \x01"])
        version = pick(["SIP/2.0"], ["sip/2.0", "SIP/2.5", "SIP/2", "SIP/2.0 "])
        start = f"{version} {code}{reason}"
    keys = ["via", "from", "to", "call-id", "cseq"]
    extra = ["max-forwards", "content-length", "route", "contact", "other", "other", "via"]
    keys += draw(st.lists(st.sampled_from(extra), max_size=6))
    if pick.noisy:  # now and then one twice
        keys += draw(st.lists(st.sampled_from(["cseq", "from", "to", "call-id"]), max_size=1))
    if pick.noisy:  # now and then one is missing
        keys = [k for k in keys if draw(st.integers(0, 30)) != 17]
    lines = [header(pick, k, method) for k in draw(st.permutations(keys))]
    eol = pick(["\r\n"], ["\n", "\r\n ", "\r\n\t", "\r"])
    head = start + "\r\n" + eol.join(lines) if lines else start
    body = draw(st.sampled_from([b"", b"v=0\r\n", b"\r\n\r\nxyz", b"\x00\xff"]))
    lead = pick([""], ["\r\n", "\r\n\r\n", "\n", " "])
    end = "\r\n\r\n" if eol != "\n" else "\n\n"
    data = (lead + head + end).encode("utf-8", "surrogateescape") + body
    if not pick.noisy or draw(st.integers(0, 6)) != 3:
        return data, DEFAULT_LIMITS
    limits = draw(
        st.sampled_from(
            [Limits(max_headers=4), Limits(max_line_length=40), Limits(max_vias=1),
             Limits(max_routes=1), Limits(max_message_size=100), Limits(max_headers=0)]
        )
    )  # fmt: skip
    return data, limits


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message())
def test_generated_messages_parse_the_same(case: tuple[bytes, Limits]) -> None:
    check_same(*case)


@st.composite
def via_text(draw: st.DrawFn) -> str:
    text = via_value(Pick(draw))
    return text if draw(st.booleans()) else f" {text}\t"


@settings(max_examples=300, deadline=None)
@given(via_text())
def test_via_values_read_the_same(text: str) -> None:
    """speedups.via (Message.push_via) agrees with hdr.via.parse_via, or defers to it."""
    assert BUILT is not None
    parts = BUILT.via(text)
    try:
        expected = [(v.transport, v.host, v.port, str(v.params)) for v in parse_via(text)]
    except ParseError:
        assert parts is None
        return
    assert parts is None or parts == expected
    for name in ("c", "pure"):
        with path(name):
            m = parse_message(INVITE)
            m.push_via(text)
            assert str(m.vias[0]) == str(parse_via(text)[0])


# ---------------------------------------------------------------- mutated RFC 4475 messages

TOKENS = [b"\r\n", b" ", b";", b",", b":", b"<", b">", b'"', b"\\", b"\t", b"\r\n ", b"\x00",
          b"\xff", b"\n", b"\r", b"=", b"tag=", b"Via: SIP/2.0/UDP h;rport=1\r\n", b"l: 99\r\n",
          b"CSeq: 1 INVITE\r\n", b"0", b"SIP/2.0 "]  # fmt: skip


def mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(4)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[min(pos, len(buf) - 1)] = rng.randrange(256)
        elif op == 1:
            buf[pos:pos] = rng.choice(TOKENS)
        elif op == 2:
            del buf[pos : pos + rng.randint(1, 6)]
        else:
            del buf[pos:]
    return bytes(buf)


# Seeds the accelerator takes itself once their few unusual bytes are normalised, so that
# mutations also hit its own code and not only the hand-over to Python.
def normalised(seed: bytes) -> bytes:
    head, sep, body = seed.partition(b"\r\n\r\n")
    lines = [ln for ln in head.split(b"\r\n") if not ln[:1].isspace()]
    return b"\r\n".join(lines) + sep + body


ALL_SEEDS = SEEDS + [normalised(s) for s in SEEDS] + [INVITE]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ALL_SEEDS), st.randoms(use_true_random=False))
def test_mutated_rfc4475_messages_parse_the_same(seed: bytes, rng: random.Random) -> None:
    check_same(mutate(rng, seed))


def test_rfc4475_messages_parse_the_same() -> None:
    for seed in ALL_SEEDS:
        check_same(seed)


def test_a_few_thousand_mutations_parse_the_same() -> None:
    rng = random.Random(4475)
    for _ in range(2000):
        check_same(mutate(rng, rng.choice(ALL_SEEDS)))


# ---------------------------------------------------------------- the accelerator is used

USUAL = [
    INVITE,
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKp;received=192.0.2.1, "
    b"SIP/2.0/TCP pc33.atlanta.example.com;branch=z9hG4bK7;rport=5060\r\n"
    b"Record-Route: <sip:192.0.2.1;lr>\r\n"
    b'To: "Bob B." <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n'
    b"f: sip:alice@atlanta.example.com;tag=19\r\n"
    b"i: a84b4c76e66710\r\n"
    b"CSeq: 0314159 INVITE\r\n"
    b"l: 0\r\n"
    b"\r\n",
    b"\r\n\r\nBYE sips:x@[2001:db8::1]:5061;transport=tls SIP/2.0\r\n"
    b"v: SIP/2.0/TLS h.example.;branch=z9hG4bKx;ttl=1\r\n"
    b"Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
    b"Route: <sip:p3.example.com;lr>\r\n"
    b"t: <tel:+1-555-0100>;tag=x\r\n"
    b"From: Anonymous Caller <sip:anonymous@anonymous.invalid>;tag=y;x=1\r\n"
    b"X-Odd :   spaced   value  \r\n"
    b"Call-ID:x\r\n"
    b"CSeq:\t7\tBYE\r\n"
    b"\r\n"
    b"ignored trailing octets",
]


@pytest.mark.parametrize("data", USUAL)
def test_usual_messages_are_taken_by_the_accelerator(data: bytes) -> None:
    assert accepted(data)
    check_same(data)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"Max-Forwards: 70", b"Max-Forwards: 7\r\n 0"),  # folded line
        (b"Max-Forwards: 70", b"Max-Forwards: 70\n"),  # bare LF
        (b"To: Bob", b"To: B\xc3\xb6b"),  # non-ASCII
        (b"CSeq: 314159 INVITE", b"CSeq: 314159 INVITE\r\nCSeq: 1 INVITE"),  # duplicate
        (b"CSeq: 314159 INVITE", b"CSeq: 314159 BYE"),  # method mismatch
        (b"pc33.atlanta.example.com:5060", b"[2001:db8::1]:5060"),  # IPv6 sent-by
        (b";rport", b";rport=65536"),
        (b"SIP/2.0/UDP", b"SIP/2.0/UDP "),  # LWS in Via
        (b"Content-Length: 4", b"Content-Length: 400"),  # longer than the body
        (b"Max-Forwards: 70", b"Max-Forwards: 256"),
        (b"INVITE sip:bob@biloxi.example.com", b"INVITE sip:bob@biloxi.example.com?x=y"),
        (b" SIP/2.0\r\n", b" SIP/2.1\r\n"),
        (b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com", b"Call-ID: "),
    ],
)
def test_unusual_messages_are_left_to_python(old: bytes, new: bytes) -> None:
    data = INVITE.replace(old, new, 1)
    assert data != INVITE
    assert not accepted(data)
    check_same(data)


@pytest.mark.parametrize(
    "to",
    [b'"B\\"ob" <sip:b@x>', b"Bob sip:b@x", b"<sip:b@x>;tag = 1", b'<sip:b@x>;x="y"', b"<sip:b@x"],
)
def test_unusual_from_to_shapes_are_checked_by_python(to: bytes) -> None:
    assert BUILT is not None
    data = INVITE.replace(b"To: Bob <sip:bob@biloxi.example.com>", b"To: " + to)
    r = BUILT.scan(data, 256, 8192, 70)
    assert r is not None and r[13] == 2  # To left to message.quick_tag
    check_same(data)


def test_limits_send_the_message_to_python() -> None:
    for limits in (Limits(max_headers=8), Limits(max_line_length=70), Limits(max_vias=0)):
        assert not accepted(INVITE, limits)
        check_same(INVITE, limits)


def test_sipedge_pure_forces_the_python_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIPEDGE_PURE", "1")
    assert _accel._load() is None
    monkeypatch.setenv("SIPEDGE_PURE", "0")
    assert _accel._load() is BUILT


# ---------------------------------------------------------------- robustness of the C code


def test_scan_never_raises_on_garbage() -> None:
    assert BUILT is not None
    rng = random.Random(7)
    alphabet = b'\r\n :;,<>"\\\t@=aZ09/.\x00\xff[]-'
    for i in range(3000):
        if i % 2:
            data = mutate(rng, rng.choice(ALL_SEEDS))
        else:
            data = bytes(rng.choice(alphabet) for _ in range(rng.randrange(80)))
        limits = (rng.randrange(-1, 300), rng.randrange(-1, 9000), rng.randrange(-1, 80))
        r = BUILT.scan(data, *limits)
        assert r is None or len(r) == 19
        assert BUILT.scan(bytearray(data), *limits) is None  # only bytes is scanned


def test_fields_rejects_what_scan_did_not_produce() -> None:
    assert BUILT is not None
    with pytest.raises(ValueError):
        BUILT.fields(b"INVITE x SIP/2.0\r\nno colon\r\n", 28, Field)
    with pytest.raises(ValueError):
        BUILT.fields(b"INVITE x SIP/2.0\r\nA: \xff\r\n", 26, Field)
    with pytest.raises(ValueError):
        BUILT.fields(b"short", 99, Field)
    with pytest.raises(TypeError):
        BUILT.fields("text", 4, Field)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        BUILT.scan(b"x", 1, 2)  # type: ignore[call-arg]


def test_fields_calls_other_factories() -> None:
    assert BUILT is not None
    r = BUILT.scan(INVITE, 256, 8192, 70)
    assert r is not None
    made = BUILT.fields(r[17], r[18], lambda *a: a)
    assert made[0] == ("via", "Via", made[0][2], 4)
    assert len(made) == 9


def test_usual_via_values_are_taken_by_the_accelerator() -> None:
    """The agreement test above also passes when via() always defers: make sure it does not."""
    if BUILT is None:
        pytest.skip("the C accelerator is not built here")
    text = "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport"
    expected = [(v.transport, v.host, v.port, str(v.params)) for v in parse_via(text)]
    assert BUILT.via(text) == expected


def test_the_c_header_table_agrees_with_header_key() -> None:
    """_speedups.c has its own copy of the compact forms and known spellings: every compact
    letter (both cases) and every long name must get the key header_key gives."""
    if BUILT is None:
        pytest.skip("the C accelerator is not built here")
    names = [n for c in COMPACT_FORMS for n in (c, c.upper())]
    names += [*sorted(set(COMPACT_FORMS.values())), "Record-Route", "WWW-Authenticate", "X-Mine"]
    head = ("OPTIONS sip:x SIP/2.0\r\n" + "".join(f"{n}: v\r\n" for n in names)).encode()
    made = BUILT.fields(head + b"\r\n", len(head), lambda *a: a)
    assert [m[0] for m in made] == [header_key(n) for n in names]
