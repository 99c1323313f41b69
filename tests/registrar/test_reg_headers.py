"""apply_register reads Expires, Supported and User-Agent in one pass over the header
fields: the same values, and the same errors, as the Request accessors give."""

from __future__ import annotations

import pytest
from reg_support import ALICE, FLOW, header, register

from sipedge.registrar import RegistrarPolicy, apply_register
from sipedge.registrar.service import _scan
from sipedge.sip._scan import split_commas
from sipedge.sip.errors import ParseError
from sipedge.sip.message import Request

T0 = 1_000_000.0
PHONE = "<sip:alice@198.51.100.7:40000>"
PATH = "Path: <sip:edge.example.net;lr>"


@pytest.mark.parametrize(
    "req",
    [
        register(PHONE),
        register(PHONE, expires=600, extra=["Expires: 700", "k: path", "Supported: gruu, X"]),
        register(PHONE, extra=["Supported:", "User-Agent: Second/2", "supported: 100rel"]),
        register(PHONE, expires=" 0600 "),
    ],
)
def test_scan_reads_what_the_request_accessors_read(req: Request) -> None:
    expires, supported, user_agent = _scan(req)
    assert expires == req.header("expires")
    tags = [t.lower() for v in supported if v for t in split_commas(v)]
    assert tags == req.option_tags("supported")
    assert user_agent == req.header("user-agent") == "TestPhone/1.0"
    out = apply_register(req, [], FLOW, T0, RegistrarPolicy())
    assert out.status == 200 and out.bindings is not None
    assert out.bindings[0].expires_at == T0 + (req.expires or 3600)
    assert out.bindings[0].user_agent == "TestPhone/1.0"


def test_compact_and_repeated_supported_headers_count() -> None:
    for extra in (["k: path"], ["Supported: timer", "Supported: 100rel, PATH"]):
        out = apply_register(register(PHONE, extra=[PATH, *extra]), [], FLOW, T0, RegistrarPolicy())
        assert header(out.headers, "Path") == "<sip:edge.example.net;lr>"
        assert header(out.headers, "Supported") == "path"
    out = apply_register(register(PHONE, extra=[PATH]), [], FLOW, T0, RegistrarPolicy())
    assert header(out.headers, "Path") is None  # stored, not echoed (RFC 3327 §5.3)


@pytest.mark.parametrize(
    "extra, accessor",
    [
        (["Supported: path,,outbound"], lambda r: r.option_tags("supported")),
        (["Expires: soon"], lambda r: r.expires),
        (["Expires: 99999999999999"], lambda r: r.expires),
    ],
)
def test_malformed_headers_give_the_accessors_error(extra: list[str], accessor: object) -> None:
    req = register(PHONE, extra=extra)
    with pytest.raises(ParseError) as exc:
        accessor(req)  # type: ignore[operator]
    out = apply_register(req, [], FLOW, T0, RegistrarPolicy())
    assert (out.status, out.reason, out.bindings) == (
        exc.value.status_hint,
        exc.value.reason,
        None,
    )


def test_the_callers_aor_is_used_as_given() -> None:
    req = register(PHONE)
    mine = apply_register(req, [], FLOW, T0, RegistrarPolicy())
    given = apply_register(req, [], FLOW, T0, RegistrarPolicy(), aor=ALICE)
    assert given == mine
    assert mine.bindings is not None and mine.bindings[0].aor == ALICE
