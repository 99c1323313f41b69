"""The keepalive pinger: a small async service around :class:`PingTracker`.

Every ``interval`` seconds :meth:`NatPinger.tick` reads the bindings from the location
store, sends each eligible one an OPTIONS (or a CRLF CRLF datagram) over its flow, from the
listener it registered on, so the same NAT binding is refreshed, and removes the bindings
that stopped answering. The transport hands every UDP datagram to :meth:`NatPinger.claim`
first: the answers to our pings (recognised by our Via branch) stop there.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Awaitable, Callable

from ..registrar.binding import Binding
from ..registrar.store import LocationStore
from ..transport.base import Flow
from .keepalive import CRLF_PING, KeepaliveSettings, PingTracker, options_ping

log = logging.getLogger("sipedge.nat")

_BRANCH_RE = re.compile(rb"[;\s]branch=(z9hG4bKnp[0-9a-f]+\.[0-9a-f]+)", re.IGNORECASE)


class NatPinger:
    """Keeps NATed UDP bindings open and removes dead ones (see the module docstring).

    ``send(data, flow)`` sends a datagram over a flow (False when it cannot);
    ``via_for(flow)`` is our ``host:port`` for the listener of a flow; ``remove(binding)``
    removes a binding if it is still stored unchanged; ``clock`` is the registrar's clock
    (bindings expire by it).
    """

    def __init__(
        self,
        *,
        store: LocationStore,
        send: Callable[[bytes, Flow], bool],
        clock: Callable[[], float],
        settings: KeepaliveSettings,
        via_for: Callable[[Flow], str],
        remove: Callable[[Binding], Awaitable[bool]],
        token: Callable[[int], str] = secrets.token_hex,
    ) -> None:
        self.store = store
        self.send = send
        self.clock = clock
        self.settings = settings
        self.via_for = via_for
        self.remove = remove
        self.tracker = PingTracker(settings)
        self._token = token
        self._prefix = f"z9hG4bKnp{token(4)}"
        self._marker = self._prefix.encode()
        self._seq = 0
        self.stats = {"sent": 0, "answered": 0, "removed": 0}

    async def run(self) -> None:
        """Ping every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.settings.interval)
            try:
                await self.tick()
            except Exception:  # a task boundary: log and keep pinging
                log.exception("NAT keepalive round failed")

    async def tick(self) -> None:
        """One round: ping the eligible bindings, remove those found dead."""
        bindings = await self._all_bindings()
        pings, dead = self.tracker.round(bindings, self.clock(), self._new_branch)
        for b, branch in pings:
            if self.send(self._message(b, branch), b.flow):
                self.stats["sent"] += 1
            else:
                self.tracker.unsent(branch)
        for b in dead:
            if await self.remove(b):
                self.stats["removed"] += 1
                lost = self.settings.max_lost
                log.info("removed %s of %s: %d keepalives unanswered", b.contact, b.aor, lost)

    async def _all_bindings(self) -> list[Binding]:
        """Every stored binding: one batched read where the store has one (Redis MGET),
        else one lookup per AOR (the in-memory store answers those without I/O)."""
        bulk = getattr(self.store, "all_bindings", None)
        if bulk is not None:
            by_aor: dict[str, list[Binding]] = await bulk()
            return [b for found in by_aor.values() for b in found]
        bindings: list[Binding] = []
        for aor in await self.store.aors():
            bindings.extend(await self.store.lookup(aor))
        return bindings

    def claim(self, data: bytes, flow: Flow) -> bool:
        """Take ``data`` if it answers one of our pings (any status proves the UA alive)."""
        if not data.startswith(b"SIP/2.0 ") or self._marker not in data:
            return False
        m = _BRANCH_RE.search(data)
        if m is None:
            return False
        if self.tracker.answered(m.group(1).decode()):
            self.stats["answered"] += 1
        return True

    def _new_branch(self) -> str:
        self._seq += 1
        return f"{self._prefix}.{self._seq:x}"

    def _message(self, b: Binding, branch: str) -> bytes:
        if self.settings.mode == "crlf":
            return CRLF_PING
        via = self.via_for(b.flow)
        return options_ping(b, via, branch, self._token(4), f"{self._token(8)}@sipedge")
