"""Which stored binding a REGISTER's Contact names, without parsing stored Contacts.

RFC 3261 §10.3 step 6 matches a Contact to a binding by URI equivalence (§19.1.4).
Parsing every stored Contact for that on every REGISTER is the registrar's costliest
step, so each :class:`~sipedge.registrar.binding.Binding` keeps a comparison key
(:func:`sipedge.sip.uri.uri_key`) written when it is made, and :func:`same_contact` decides from the
keys. §19.1.4 equivalence is not transitive (a parameter present in one URI only is
ignored unless it is ``user``, ``ttl``, ``method``, ``maddr`` or ``transport``), so a
key cannot decide every case: when both URIs carry other parameters the URIs are
compared in full, which also happens for bindings without a key (loaded from storage or
another node).
"""

from __future__ import annotations

from ..sip.uri import URI, parse_uri, uri_equal, uri_keys_equal
from .binding import Binding


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
        decided = uri_keys_equal(stored, key)
        if decided is not None:
            return decided
    if parsed is None:
        return uri_equal(parse_uri(b.contact), uri)
    stored_uri = parsed.get(b.contact)
    if stored_uri is None:
        stored_uri = parsed[b.contact] = parse_uri(b.contact)
    return uri_equal(stored_uri, uri)
