"""Header field names: compact forms, canonical keys and list-valued headers.

Header names are case-insensitive (RFC 3261 §7.3.1) and several have a compact form
(RFC 3261 §7.3.3, §20, and later RFCs listed below). The parser stores every field under a
*key*: the lower-case long name. The original spelling is kept for serialisation.
"""

from __future__ import annotations

# RFC 3261 §7.3.3 and §20, plus the compact forms registered later with IANA:
# o (RFC 6665 Event), u (RFC 6665 Allow-Events), r (RFC 3515 Refer-To),
# b (RFC 3892 Referred-By), x (RFC 4028 Session-Expires), y (RFC 4538 Target-Dialog),
# a (RFC 3841 Accept-Contact), j (RFC 3841 Reject-Contact), d (RFC 3841 Request-Disposition).
COMPACT_FORMS: dict[str, str] = {
    "v": "via",
    "f": "from",
    "t": "to",
    "i": "call-id",
    "m": "contact",
    "l": "content-length",
    "c": "content-type",
    "k": "supported",
    "s": "subject",
    "e": "content-encoding",
    "o": "event",
    "u": "allow-events",
    "r": "refer-to",
    "b": "referred-by",
    "x": "session-expires",
    "y": "target-dialog",
    "a": "accept-contact",
    "j": "reject-contact",
    "d": "request-disposition",
}

# Canonical spelling used when sipedge itself writes a header.
_PRETTY: dict[str, str] = {
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "www-authenticate": "WWW-Authenticate",
    "mime-version": "MIME-Version",
    "rack": "RAck",
    "rseq": "RSeq",
}

# Headers whose values are comma-separated lists (RFC 3261 §7.3.1: "#" rules in §25).
# Headers absent here (the auth headers, Date, User-Agent, Server, Subject, ...) may
# legitimately carry commas inside one value and are never split.
LIST_HEADERS: frozenset[str] = frozenset(
    {
        "via",
        "route",
        "record-route",
        "path",
        "service-route",
        "contact",
        "allow",
        "allow-events",
        "supported",
        "require",
        "proxy-require",
        "unsupported",
        "accept",
        "accept-encoding",
        "accept-language",
        "content-encoding",
        "content-language",
        "in-reply-to",
        "alert-info",
        "call-info",
        "error-info",
        "warning",
        "reason",
        "security-client",
        "security-server",
        "security-verify",
        "p-associated-uri",
    }
)

# Headers that must appear at most once (RFC 3261 §7.3.1 and the single-value rules of
# §20); a request carrying two of them is answered 400 (RFC 4475 §3.3.8, §3.3.9).
SINGLE_HEADERS: frozenset[str] = frozenset(
    {"call-id", "cseq", "from", "to", "max-forwards", "content-length"}
)


def header_key(name: str) -> str:
    """Return the storage key of a header name: lower-case, compact forms expanded."""
    low = name.lower()
    return COMPACT_FORMS.get(low, low)


def pretty_name(key: str) -> str:
    """Return the conventional spelling of a header key (``call-id`` -> ``Call-ID``)."""
    special = _PRETTY.get(key)
    if special is not None:
        return special
    return "-".join(part.capitalize() for part in key.split("-"))
