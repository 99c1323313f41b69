"""Building the NAT services from the ``[nat]`` section (used by the composition root)."""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from ..config import Config
from ..proxy.flowtoken import FlowTokens
from ..registrar.binding import Binding
from ..registrar.store import LocationStore
from ..transport.base import Flow
from .keepalive import KeepaliveSettings
from .pinger import NatPinger
from .policy import NatSettings, NatTraversal

log = logging.getLogger("sipedge.nat")


def build_nat(
    c: Config, fallback_secret: bytes | None = None
) -> tuple[FlowTokens, NatTraversal | None]:
    """The flow tokens (signed with ``nat.token_secret`` when set, else ``fallback_secret``,
    else a random key) and the NAT policy, or None when ``nat.enabled`` is false (WS/TCP
    clients still get their tokens, and every dialog its signed Record-Route)."""
    secret = c.nat.token_secret.encode() if c.nat.token_secret else fallback_secret
    tokens = FlowTokens(secret)
    if not c.nat.enabled:
        return tokens, None
    settings = NatSettings(
        tests=tuple(c.nat.tests),
        contact=c.nat.contact,
        fix_sdp=c.nat.fix_sdp and not c.media.enabled,  # a media relay does better
        fix_sdp_origin=c.nat.fix_sdp_origin,
    )
    return tokens, NatTraversal(settings, tokens)


def node_key(state_dir: Path) -> bytes | None:
    """This node's own signing key for flow tokens and dialog MACs, kept in
    ``state_dir/route.key`` (made on first start, mode 0600) so that dialogs and flows
    outlive a restart; None (a random key per start) when the directory is unusable."""
    path = state_dir / "route.key"
    try:
        key = path.read_bytes()
        if len(key) >= 32:
            return key
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("cannot read %s (%s): dialogs will not survive a restart", path, exc)
        return None
    key = os.urandom(32)
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key)
    except OSError as exc:
        log.warning("cannot write %s (%s): dialogs will not survive a restart", path, exc)
        return None
    return key


def pings_answered(c: Config) -> bool:
    """Whether OPTIONS keepalives run, whose answers the transport must hand to the pinger."""
    return c.nat.enabled and c.registrar.enabled and c.nat.keepalive == "options"


def build_pinger(
    c: Config,
    store: LocationStore | None,
    *,
    send: Callable[[bytes, Flow], bool],
    clock: Callable[[], float],
    via_for: Callable[[Flow], str],
    remove: Callable[[Binding], Awaitable[bool]],
) -> NatPinger | None:
    """The keepalive pinger over the registrar's ``store``, or None when keepalives are
    off (``nat.keepalive = "off"``, NAT handling or the registrar disabled)."""
    if store is None or not c.nat.enabled or c.nat.keepalive == "off":
        return None
    settings = KeepaliveSettings(
        mode=c.nat.keepalive,
        interval=c.nat.keepalive_interval,
        max_lost=c.nat.keepalive_max_lost,
        all_udp=c.nat.keepalive_all_udp,
    )
    return NatPinger(
        store=store, send=send, clock=clock, settings=settings, via_for=via_for, remove=remove
    )
