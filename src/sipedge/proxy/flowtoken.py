"""Flow tokens: the connection a client is reachable on, carried in our Record-Route.

A WebSocket or TCP client, and a UDP client behind NAT, can only be reached over the flow
it opened (RFC 5626 §5.3, RFC 7118 §5; for UDP, the NAT binding its requests created).
When such a client sends a dialog-forming request, the Record-Route entry that faces it
carries a token naming that flow in its user part. A sequential request that comes back
through that entry from the other side of the dialog is sent over the flow, never to the
client's ``.invalid`` or private Contact host.

The same token goes into the Path entry sipedge adds to a REGISTER it relays to another
registrar (RFC 3327), so that registrar's requests come back through the right flow.

The token is signed (HMAC-SHA256, truncated) so a peer cannot forge one to reach another
client's connection or an arbitrary host (never an open relay), and it is self-contained:
no per-dialog state is kept.

The same key signs the dialog itself: every Record-Route entry we add carries a ``dlg``
parameter, a MAC of the Call-ID and the From tag of the dialog-forming request that our
policy let through. A sequential request (RFC 3261 §12.2) of that dialog, in either
direction, has that tag as its From or To tag, so :meth:`FlowTokens.dialog_signed` can
tell a Route we recorded for this dialog from one a caller merely wrote (an in-dialog
looking request, a made-up To tag, preloading our address to be relayed anywhere).

:meth:`FlowTokens.looks_like` tells a token that fails the check (forged, or signed by
another secret) from an ordinary user part, so that such a request can be refused. Nodes
that must accept each other's tokens and dialogs (a cluster, or dialogs that outlive a
restart) share the ``secret``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from ..transport.base import Flow

_MAC_BYTES = 10
_PREFIX = "ft-"
_DIALOG_MAC_BYTES = 8
#: The Record-Route URI parameter that carries the dialog MAC.
DIALOG_PARAM = "dlg"


class FlowTokens:
    """Encodes flows into URI-safe tokens and back (see the module docstring)."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret if secret is not None else os.urandom(32)
        self._dialog = hmac.new(self._secret, b"dlg\0", hashlib.sha256)  # keyed once

    def encode(self, flow: Flow) -> str:
        """A token for ``flow``: ``ft-`` + base32 of the flow and its MAC."""
        text = "|".join(
            (
                flow.transport,
                flow.local[0],
                str(flow.local[1]),
                flow.remote[0],
                str(flow.remote[1]),
                "" if flow.conn_id is None else str(flow.conn_id),
            )
        ).encode()
        mac = hmac.new(self._secret, text, hashlib.sha256).digest()[:_MAC_BYTES]
        raw = base64.b32encode(mac + text).decode().rstrip("=").lower()
        return _PREFIX + raw

    @staticmethod
    def looks_like(user: str) -> bool:
        """Whether a URI user part has the form of a token (valid or not)."""
        return user.startswith(_PREFIX)

    def decode(self, token: str) -> Flow | None:
        """The flow a token names, or None when it is not one of ours (or forged)."""
        if not token.startswith(_PREFIX):
            return None
        body = token[len(_PREFIX) :].upper()
        try:
            raw = base64.b32decode(body + "=" * (-len(body) % 8))
        except ValueError:
            return None
        mac, text = raw[:_MAC_BYTES], raw[_MAC_BYTES:]
        good = hmac.new(self._secret, text, hashlib.sha256).digest()[:_MAC_BYTES]
        if not hmac.compare_digest(mac, good):
            return None
        try:
            transport, lip, lport, rip, rport, conn = text.decode().split("|")
            return Flow(
                transport, (lip, int(lport)), (rip, int(rport)), int(conn) if conn else None
            )
        except ValueError:
            return None

    def dialog_mac(self, call_id: str, tag: str) -> str:
        """The ``dlg`` value for a dialog: hex MAC of its Call-ID and one of its tags."""
        mac = self._dialog.copy()
        mac.update(f"{call_id}\0{tag}".encode("utf-8", "surrogateescape"))
        return mac.digest()[:_DIALOG_MAC_BYTES].hex()

    def dialog_signed(self, mac: str, call_id: str, tags: tuple[str | None, ...]) -> bool:
        """Whether ``mac`` is our ``dlg`` value for ``call_id`` and one of ``tags``."""
        if len(mac) != 2 * _DIALOG_MAC_BYTES or not mac.isascii():
            return False
        for tag in tags:
            if tag is not None and hmac.compare_digest(mac, self.dialog_mac(call_id, tag)):
                return True
        return False
