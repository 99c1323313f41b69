"""Shared helpers for the security tests: request builders and sipvicious-shaped messages.

The sipvicious messages are written here after the shapes recorded for sipvicious 0.3.8
(header order Via, Max-Forwards, To, From, User-Agent, Call-ID, Contact, CSeq, Accept,
Content-Length; branch ``z9hG4bK-<digits>``; digit-only Call-IDs; hex From-tags).
"""

from __future__ import annotations

from collections.abc import Sequence

from sipedge.security import Rule, RuleTable, TableSettings, parse_rules
from sipedge.sip.message import Request
from sipedge.sip.parser import parse_message

PROXY_IP = "10.0.0.5"
SENDER = "192.0.2.10"
SCANNER = "198.51.100.7"
# hex("7f00000113c4" 0x01 "1834071320"): target address and port, 0x01, a random number
SVMAP_TAG = "3766303030303031313363340131383334303731333230"


def parse(lines: Sequence[str]) -> Request:
    """Parse a request given as header lines (no body)."""
    msg = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(msg, Request)
    return msg


def make_request(
    method: str = "INVITE",
    uri: str = "sip:bob@example.com",
    *,
    from_: str = "Alice <sip:alice@example.com>;tag=1928301774",
    to: str = "Bob <sip:bob@example.com>",
    ua: str | None = "Linphone/5.2.0 (belle-sip/5.2.0)",
    call_id: str = "a84b4c76e66710@pc33.example.com",
    branch: str = "z9hG4bK776asdhds",
    contact: str | None = f"<sip:alice@{SENDER}:5060>",
    extra: Sequence[str] = (),
) -> Request:
    """A legitimate-looking request; every keyword replaces one part of it."""
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/UDP {SENDER}:5060;branch={branch};rport",
        "Max-Forwards: 70",
        f"To: {to}",
        f"From: {from_}",
        f"Call-ID: {call_id}",
        f"CSeq: 1 {method}",
    ]
    if ua is not None:
        lines.append(f"User-Agent: {ua}")
    if contact is not None:
        lines.append(f"Contact: {contact}")
    lines += [*extra, "Content-Length: 0"]
    return parse(lines)


def svmap(method: str = "OPTIONS", ua: str = "friendly-scanner") -> Request:
    """svmap probing the proxy (OPTIONS, or INVITE without a body)."""
    return parse(
        [
            f"{method} sip:100@{PROXY_IP} SIP/2.0",
            f"Via: SIP/2.0/UDP {SCANNER}:15061;branch=z9hG4bK-2395497203;rport",
            "Max-Forwards: 70",
            'To: "sipvicious"<sip:100@1.1.1.1>',
            'From: "sipvicious"<sip:100@1.1.1.1>;tag=' + SVMAP_TAG,
            f"User-Agent: {ua}",
            "Call-ID: 411293178100031266324363",
            f"Contact: sip:100@{SCANNER}:15061",
            f"CSeq: 1 {method}",
            "Accept: application/sdp",
            "Content-Length: 0",
        ]
    )


def svwar(ext: str = "1000", ua: str = "friendly-scanner") -> Request:
    """svwar enumerating extensions with REGISTER."""
    tag = (ext.encode() + b"\x01" + b"5472053335").hex()
    return parse(
        [
            f"REGISTER sip:{PROXY_IP} SIP/2.0",
            f"Via: SIP/2.0/UDP {SCANNER}:15062;branch=z9hG4bK-3126247837;rport",
            "Max-Forwards: 70",
            f'To: "{ext}"<sip:{ext}@{PROXY_IP}>',
            f'From: "{ext}"<sip:{ext}@{PROXY_IP}>;tag={tag}',
            f"User-Agent: {ua}",
            "Call-ID: 459597665",
            f"Contact: sip:{ext}@{PROXY_IP}",
            "CSeq: 1 REGISTER",
            "Accept: application/sdp",
            "Content-Length: 0",
        ]
    )


def svcrack(
    password: str | None = None, ua: str = "friendly-scanner", authorization: str | None = None
) -> Request:
    """svcrack guessing user 1000's password: the first REGISTER has the constant tag, each
    attempt a tag that is the hex of ``1000:<password>``, 0x01 and a number."""
    if password is None:
        tag, cseq = "3206210844", 1
    else:
        tag, cseq = (f"1000:{password}".encode() + b"\x01" + b"8123").hex(), 2
    lines = [
        f"REGISTER sip:{PROXY_IP} SIP/2.0",
        f"Via: SIP/2.0/UDP {SCANNER}:15063;branch=z9hG4bK-1220433461;rport",
        "Max-Forwards: 70",
        f'To: "1000" <sip:1000@{PROXY_IP}>',
        f'From: "1000" <sip:1000@{PROXY_IP}>;tag={tag}',
        f"User-Agent: {ua}",
        "Call-ID: 1930146496",
        f"Contact: sip:1000@{PROXY_IP}",
        f"CSeq: {cseq} REGISTER",
        "Accept: application/sdp",
        "Content-Length: 0",
    ]
    if authorization is not None:
        lines.append(f"Authorization: {authorization}")  # svcrack appends it last
    return parse(lines)


def rule(field: str, match: str, value: str, action: str = "drop", **kw: object) -> Rule:
    """A rule built through the TOML loader (so tests exercise the same path as files)."""
    name = str(kw.pop("name", f"{field}-{match}-{value}"))
    extra = "".join(f"{k} = {_toml(v)}\n" for k, v in kw.items())
    text = (
        f"[[rule]]\nname = {_toml(name)}\nfield = {_toml(field)}\nmatch = {_toml(match)}\n"
        f"value = {_toml(value)}\naction = {_toml(action)}\n{extra}"
    )
    rules, _ = parse_rules(text)
    return rules[0]


def _toml(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    s = str(v).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{s}"'


def table(*rules: Rule, **settings: object) -> RuleTable:
    """A table of ``rules`` with scoring off unless asked for."""
    settings.setdefault("score_threshold", 0)
    return RuleTable(rules, TableSettings(**settings))  # type: ignore[arg-type]
