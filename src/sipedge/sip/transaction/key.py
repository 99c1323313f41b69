"""Transaction matching keys over plain values (RFC 3261 §17.1.3, §17.2.3).

Client side (§17.1.3): a response belongs to the client transaction whose request carried the
same top-Via branch and whose method equals the response's CSeq method (so a CANCEL, which
reuses the INVITE's branch, has a transaction of its own).

Server side (§17.2.3): when the top Via branch starts with the magic cookie ``z9hG4bK`` the
key is (branch, sent-by, method), with ACK mapped to INVITE so that the ACK for a non-2xx
final response finds its INVITE transaction. A branch without the cookie, or the bare cookie
with nothing after it (RFC 4475 §3.2.1), falls back to the RFC 2543 rules: Request-URI, From
tag, Call-ID, CSeq number and method, top Via; the To tag is compared by the caller (against
the request's To tag, or for an ACK against the To tag of the response the transaction sent),
since it is not known when the transaction is created.
"""

from __future__ import annotations

from dataclasses import dataclass

MAGIC_COOKIE = "z9hG4bK"  # RFC 3261 §8.1.1.7


def is_rfc3261_branch(branch: str | None) -> bool:
    """Whether ``branch`` is an RFC 3261 branch: the magic cookie and something after it.

    The bare cookie is not (RFC 4475 §3.2.1 "badbranch": treat it as an RFC 2543 branch).
    """
    return (
        branch is not None and len(branch) > len(MAGIC_COOKIE) and branch.startswith(MAGIC_COOKIE)
    )


def match_method(method: str) -> str:
    """The method used in a server key: ACK matches its INVITE transaction (§17.2.3)."""
    return "INVITE" if method == "ACK" else method


@dataclass(frozen=True, slots=True)
class ClientKey:
    """Client transaction key: top Via branch and CSeq method (§17.1.3)."""

    branch: str
    method: str


@dataclass(frozen=True, slots=True)
class ServerKey:
    """RFC 3261 server transaction key: branch, sent-by and method (§17.2.3)."""

    branch: str
    host: str
    port: int | None
    method: str


@dataclass(frozen=True, slots=True)
class LegacyKey:
    """RFC 2543 server transaction key (§17.2.3); the To tag is compared separately."""

    request_uri: str
    from_tag: str | None
    call_id: str
    cseq_number: int
    method: str
    transport: str
    host: str
    port: int | None
    branch: str | None


def client_key(branch: str | None, cseq_method: str) -> ClientKey | None:
    """The key of a client transaction or of a response; None without a branch."""
    if not branch:
        return None
    return ClientKey(branch, cseq_method)


def server_key(
    *,
    method: str,
    branch: str | None,
    sent_by: tuple[str, int | None],
    transport: str,
    request_uri: str,
    from_tag: str | None,
    call_id: str,
    cseq_number: int,
) -> ServerKey | LegacyKey:
    """The server key of a request with these values (§17.2.3).

    ``method`` is the request's method; ACK is mapped to INVITE here. Host names compare
    case-insensitively, the transport name too.
    """
    host, port = sent_by
    method = match_method(method)
    if branch is not None and is_rfc3261_branch(branch):
        return ServerKey(branch, host.lower(), port, method)
    return LegacyKey(
        request_uri,
        from_tag,
        call_id,
        cseq_number,
        method,
        transport.upper(),
        host.lower(),
        port,
        branch,
    )
