"""NAT traversal (nathelper-style): detection, Contact/SDP fixing, flow tokens, keepalives.

``addresses`` and ``detect`` say whether a sender is behind a NAT; ``rewrite`` and ``sdp``
are the message edits; ``policy`` applies them as the ``[nat]`` section says
(:class:`NatTraversal`, called by the proxy core and the default router); ``keepalive``
(pure) and ``pinger`` (async) keep NATed UDP bindings open and remove dead ones (import
them from their modules: they depend on the registrar, which depends on this package).
"""

from __future__ import annotations

from .addresses import is_private, same_ip
from .detect import DEFAULT_TESTS, NAT_TESTS, detect
from .policy import NatSettings, NatTraversal
from .rewrite import path_value, received_uri, rewrite_contacts
from .sdp import fix_sdp, fix_sdp_body

__all__ = [
    "DEFAULT_TESTS",
    "NAT_TESTS",
    "NatSettings",
    "NatTraversal",
    "detect",
    "fix_sdp",
    "fix_sdp_body",
    "is_private",
    "path_value",
    "received_uri",
    "rewrite_contacts",
    "same_ip",
]
