"""``response_bytes`` writes exactly what ``build_response(...).to_bytes()`` writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipedge.sip.build import build_response, response_bytes
from sipedge.sip.errors import ParseError
from sipedge.sip.message import Request
from sipedge.sip.parser import parse_message

DATA = Path(__file__).parent.parent / "data" / "rfc4475"

REGISTER = (
    b"REGISTER sip:example.org SIP/2.0\r\n"
    b"v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport\r\n"
    b"Via: SIP/2.0/TCP 10.0.0.2;branch=z9hG4bK2\r\n"
    b'f: "A" <sip:alice@example.org>;tag=x\r\n'
    b"t:   <sip:alice@example.org>\r\n"
    b"i: abc\r\nCSeq: 7 REGISTER\r\nm: <sip:alice@10.0.0.1>\r\nl: 0\r\n\r\n"
)


def requests() -> list[Request]:
    out = [parse_message(REGISTER)]
    for path in sorted(DATA.glob("*.dat")):
        try:
            msg = parse_message(path.read_bytes())
            if isinstance(msg, Request):
                _ = msg.fields, msg.to_tag  # some only fail when a header is read
                out.append(msg)
        except ParseError:
            continue
    return [m for m in out if isinstance(m, Request)]


@pytest.mark.parametrize("status", [100, 200, 401, 423])
def test_same_bytes_as_build_response(status: int) -> None:
    headers = [("WWW-Authenticate", 'Digest realm="r", nonce="n"'), ("Min-Expires", "60")]
    reqs = requests()
    assert len(reqs) > 10
    for req in reqs:
        for reason in (None, "Custom"):
            want = build_response(req, status, reason, to_tag="t9", headers=headers)
            got = response_bytes(req, status, reason, to_tag="t9", headers=headers)
            assert got == want.to_bytes(), req.start_line


def test_no_tag_added_when_to_has_one() -> None:
    req = parse_message(REGISTER.replace(b"t:   <sip:alice@example.org>", b"t: <sip:a@b>;tag=z"))
    assert isinstance(req, Request)
    assert b"tag=t9" not in response_bytes(req, 200, to_tag="t9")
    assert b"tag=t9" in response_bytes(parse_message(REGISTER), 200, to_tag="t9")  # type: ignore[arg-type]
