"""The ``[nat]`` section: NAT traversal for clients behind home and office routers."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, model_validator

from .base import Section, setting
from .values import Invalid, Items, unique

NatTest = Literal["contact-private", "via-address", "via-port", "sdp-private", "sdp-address", "ws"]
NatTests = Annotated[Items[NatTest], AfterValidator(unique)]


class NatConfig(Section):
    """NAT traversal (nathelper-style): detection, flow tokens, SDP fixing, keepalives."""

    enabled: bool = setting(
        True, "Detect NATed clients and reach them through the flow their requests came on."
    )
    tests: NatTests = setting(
        ("contact-private", "via-address", "via-port", "ws"),
        "Detection tests; any one firing means NATed (as nat_uac_test 19 plus WebSocket): "
        "contact-private (RFC 1918/6598 Contact), via-address, via-port (sent-by is not the "
        "source), sdp-private, sdp-address (c= private / not the source), ws.",
    )
    contact: Literal["flow-token", "rewrite"] = setting(
        "flow-token",
        "flow-token: Contact kept, our signed Record-Route token names the flow; rewrite: "
        "Contact set to the source address (for peers that do not record-route).",
    )
    fix_sdp: bool = setting(
        False, "Set SDP c= of NATed senders to their source address (a=oldcip keeps the old)."
    )
    fix_sdp_origin: bool = setting(False, "With fix_sdp, set o= as well (a=oldoip).")
    keepalive: Literal["options", "crlf", "off"] = setting(
        "options",
        "Keep NATed UDP bindings open: OPTIONS (answered, proves liveness) or a 4-byte CRLFCRLF.",
    )
    keepalive_interval: float = setting(
        20.0, "Seconds between keepalives; below the NAT's UDP timeout.", gt=0.0
    )
    keepalive_max_lost: int = setting(
        3, "Unanswered OPTIONS in a row before the binding is removed; 0 = never.", ge=0
    )
    keepalive_all_udp: bool = setting(False, "Ping every UDP binding, not only NATed ones.")
    token_secret: str = setting(
        "",
        "Key signing flow tokens and dialog Record-Routes, the same on every node of a "
        'cluster; "" = a key of this node kept in server.state_dir/route.key.',
    )

    @model_validator(mode="after")
    def _secret_long_enough(self) -> NatConfig:
        if self.token_secret and len(self.token_secret.encode()) < 16:
            raise Invalid(
                f"token_secret is {len(self.token_secret.encode())} bytes long",
                "write at least 16 random characters, the same on every node",
                key="token_secret",
            )
        return self
