"""Property tests: serialise(parse(m)) == m for generated messages, and edits keep the rest."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sipedge.sip.message import Request, Response
from sipedge.sip.parser import parse_message

TOKEN = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~",
    min_size=1,
    max_size=12,
)
HOST = st.from_regex(r"[a-z][a-z0-9]{0,8}(\.[a-z][a-z0-9]{0,8}){0,2}", fullmatch=True)
SAFE_VALUE = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=","),
    min_size=1,
    max_size=30,
)
SPACES = st.sampled_from(["", " ", "  ", "\t"])
DISPLAY = st.sampled_from(["", "Bob ", '"B o b" '])


@st.composite
def extra_header(draw: st.DrawFn) -> str:
    name = "X-" + draw(TOKEN)
    before = draw(SPACES)
    value = draw(SAFE_VALUE)
    fold = draw(st.booleans())
    if fold:
        value = value + "\r\n " + draw(SAFE_VALUE)
    return f"{name}{before}:{draw(SPACES)}{value}"


@st.composite
def message(draw: st.DrawFn) -> bytes:
    is_request = draw(st.booleans())
    method = draw(st.sampled_from(["INVITE", "OPTIONS", "BYE", "REGISTER", "MESSAGE"]))
    host = draw(HOST)
    user = draw(st.from_regex(r"[a-z0-9]{1,10}", fullmatch=True))
    port = draw(st.integers(1, 65535))
    branch = "z9hG4bK" + draw(st.from_regex(r"[a-zA-Z0-9]{1,16}", fullmatch=True))
    tag = draw(st.from_regex(r"[a-zA-Z0-9]{1,12}", fullmatch=True))
    reason = draw(st.sampled_from(["OK", "Busy Here", ""]))
    start = (
        f"{method} sip:{user}@{host}:{port} SIP/2.0"
        if is_request
        else f"SIP/2.0 {draw(st.integers(100, 699))} {reason}"
    )
    via_name = draw(st.sampled_from(["Via", "v", "VIA"]))
    transport = draw(st.sampled_from(["UDP", "TCP", "TLS"]))
    via_param = draw(st.sampled_from(["", ";rport", ";received=192.0.2.1"]))
    to_name = draw(st.sampled_from(["To", "t"]))
    headers = [
        f"{via_name}: SIP/2.0/{transport} {host}:{port};branch={branch}{via_param}",
        f"{draw(st.sampled_from(['From', 'f']))}: <sip:{user}@{host}>;tag={tag}",
        f"{to_name}: {draw(DISPLAY)}<sip:b@{host}>",
        f"{draw(st.sampled_from(['Call-ID', 'i']))}: {tag}@{host}",
        f"CSeq: {draw(st.integers(0, 2**31 - 1))} {method}",
        f"Max-Forwards: {draw(st.integers(0, 255))}",
    ]
    headers += draw(st.lists(extra_header(), max_size=5))
    headers = draw(st.permutations(headers))
    body = draw(st.binary(max_size=40))
    headers.append(f"{draw(st.sampled_from(['Content-Length', 'l']))}: {len(body)}")
    return ("\r\n".join([start, *headers]) + "\r\n\r\n").encode() + body


@settings(max_examples=300, deadline=None)
@given(message())
def test_roundtrip_untouched(data: bytes) -> None:
    m = parse_message(data)
    assert m.to_bytes() == data
    again = parse_message(m.to_bytes())
    assert again.call_id == m.call_id and again.cseq == m.cseq


@settings(max_examples=300, deadline=None)
@given(message())
def test_edits_touch_only_what_changed(data: bytes) -> None:
    m = parse_message(data)
    original_lines = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    if isinstance(m, Request):
        m.set_max_forwards(9)
        m.push_via("SIP/2.0/UDP 192.0.2.99:5060;branch=z9hG4bKedit")
        m.add_record_route("<sip:192.0.2.99;lr>")
        out = m.to_bytes()
        again = parse_message(out)
        assert isinstance(again, Request)
        assert again.max_forwards == 9
        assert again.vias[0].branch == "z9hG4bKedit"
        untouched = [ln for ln in original_lines if not ln.lower().startswith(b"max-forwards")]
    else:
        assert isinstance(m, Response)
        m.add_header("X-Added", "1")
        out = m.to_bytes()
        untouched = original_lines
    head = out.split(b"\r\n\r\n", 1)[0]
    for line in untouched:
        assert line in head  # every untouched field goes out byte for byte
    assert out.endswith(m.body)
