"""Which stored binding a REGISTER's Contact names, without parsing stored Contacts.

RFC 3261 §10.3 step 6 matches a Contact to a binding by URI equivalence (§19.1.4).
Parsing every stored Contact for that on every REGISTER is the registrar's costliest
step, so each :class:`~sipedge.registrar.binding.Binding` keeps a comparison key
(:func:`contact_key`) written when it is made, and :func:`same_contact` decides from the
keys. §19.1.4 equivalence is not transitive (a parameter present in one URI only is
ignored unless it is ``user``, ``ttl``, ``method``, ``maddr`` or ``transport``), so a
key cannot decide every case: when both URIs carry other parameters the URIs are
compared in full, which also happens for bindings without a key (loaded from storage or
another node).
"""

from __future__ import annotations

from ..sip.uri import (
    _MUST_MATCH,
    URI,
    _header_list,
    _host_key,
    _norm,
    _param_map,
    parse_uri,
    uri_equal,
)
from .binding import Binding

#: Ends the key of a URI that has parameters outside ``_MUST_MATCH`` (no key ends in
#: ``;`` otherwise: hosts, ports, parameter values and headers never do).
_MORE = ";"


def contact_key(uri: URI, text: str = "") -> str | None:
    """The comparison key of a Contact URI, or None for a non-SIP URI (compared in full).

    The key holds, normalised as :func:`~sipedge.sip.uri.uri_equal` compares them, the
    scheme, user, password, host, port, the parameters that must match when present
    (sorted), the headers (sorted) and, as a final ``;``, whether other parameters exist.
    For a plain ``sip:user@host:port`` (lower-case host, no escapes, no parameters) the
    key equals ``str(uri)``: pass that as ``text`` (and nothing else) to get that very
    string back, cheaply (a binding then spends no memory on its key).
    """
    scheme = uri.scheme
    if (scheme != "sip" and scheme != "sips") or uri.opaque is not None:
        return None
    user, password, params, host = uri.user, uri.password, uri.params, uri.host
    if (
        text
        and not params
        and uri.headers is None
        and password is None
        and (user is None or "%" not in user)
        and host[0] != "["
        and host.lower() == host
    ):
        return text  # already in normal form
    if user is None:
        key = f"{scheme}:{_host_key(host)}"
    elif password is None:
        key = f"{scheme}:{_norm(user)}@{_host_key(host)}"
    else:
        key = f"{scheme}:{_norm(user)}:{_norm(password)}@{_host_key(host)}"
    if uri.port is not None:
        key = f"{key}:{uri.port}"
    more = False
    if params:
        found = _param_map(params)
        for name in sorted(found):
            if name in _MUST_MATCH:
                value = found[name]
                key += f";{name}" if value is None else f";{name}={value}"
            else:
                more = True
    if uri.headers:
        key += "?" + "&".join(f"{n}={v}" for n, v in _header_list(uri.headers))
    if more:
        return key + _MORE
    return key


def keys_decide(a: str, b: str) -> bool | None:
    """Whether the URIs of keys ``a`` and ``b`` are equivalent (RFC 3261 §19.1.4), or
    None when both have parameters outside the must-match set (compare them in full)."""
    a_more, b_more = a[-1] == _MORE, b[-1] == _MORE
    if a_more and b_more:
        return None if a == b else False
    return (a[:-1] if a_more else a) == (b[:-1] if b_more else b)


def same_contact(
    b: Binding, uri: URI, text: str, key: str | None, parsed: dict[str, URI] | None = None
) -> bool:
    """Whether binding ``b`` is for Contact ``uri`` (written ``text``, key ``key``):
    RFC 3261 §10.3 step 6, URI equivalence of §19.1.4.

    Equal text is equivalent; keys decide when both exist and can; otherwise the stored
    Contact is parsed (ParseError when it is unreadable, as before keys existed), once per
    text when a ``parsed`` cache is given."""
    if b.contact == text:
        return True
    stored = b.contact_key
    if stored is not None and key is not None:
        decided = keys_decide(stored, key)
        if decided is not None:
            return decided
    if parsed is None:
        return uri_equal(parse_uri(b.contact), uri)
    stored_uri = parsed.get(b.contact)
    if stored_uri is None:
        stored_uri = parsed[b.contact] = parse_uri(b.contact)
    return uri_equal(stored_uri, uri)
