"""NAT keepalives for UDP bindings, sans I/O: who to ping, who is dead, what to send.

A NAT drops an idle UDP binding after a while (often 30 s to a few minutes). Requests for
a UA behind it then never arrive, so the registrar keeps the binding open by sending it
something every ``interval`` seconds (nathelper's ``natping_interval``):

* ``options``: a SIP OPTIONS (nathelper "SIP pinging"). It goes both ways, so any NAT
  refreshes its binding, and the UA's answer (any status) proves it is alive; a binding
  whose last ``max_lost`` pings all went unanswered is removed (``max_pings_lost``);
* ``crlf``: a 4-byte ``CRLF CRLF`` datagram (the RFC 5626 §3.5.1 keepalive, which SIP
  stacks ignore). Cheaper, one way only, no liveness check.

:class:`PingTracker` keeps, per binding, whether the last ping was answered and how many
in a row were not; a refreshed REGISTER (new Call-ID/CSeq) starts the count again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from ..registrar.binding import Binding
from ..sip.errors import ProtocolError

KeepaliveMode = Literal["options", "crlf", "off"]
CRLF_PING = b"\r\n\r\n"

_Key = tuple[str, str, str, int, tuple[str, int]]  # aor, contact, call-id, cseq, remote


@dataclass(frozen=True, slots=True)
class KeepaliveSettings:
    """How NATed UDP bindings are kept open (the ``keepalive*`` keys of ``[nat]``)."""

    mode: KeepaliveMode = "options"
    interval: float = 20.0
    max_lost: int = 3  # 0: never remove a binding for lost pings
    all_udp: bool = False  # ping every UDP binding, not only NATed ones

    def __post_init__(self) -> None:
        if self.interval <= 0 or self.max_lost < 0:
            raise ProtocolError("keepalive interval must be > 0 and max_lost >= 0")


class PingTracker:
    """Ping rounds and their answers (see the module docstring)."""

    def __init__(self, settings: KeepaliveSettings) -> None:
        self.settings = settings
        self._lost: dict[_Key, int] = {}
        self._waiting: dict[_Key, str] = {}  # binding -> branch of its unanswered ping
        self._by_branch: dict[str, _Key] = {}

    def eligible(self, b: Binding, now: float) -> bool:
        """A live UDP binding reached directly (not through a Path), NATed unless every
        UDP binding is pinged."""
        return (
            b.transport == "udp"
            and b.is_live(now)
            and not b.path
            and (b.nat or self.settings.all_udp)
        )

    def round(
        self, bindings: Iterable[Binding], now: float, new_branch: Callable[[], str]
    ) -> tuple[list[tuple[Binding, str]], list[Binding]]:
        """One round at ``now``: the bindings to ping now, each with the Via branch of its
        ping, and the bindings found dead (removed from tracking)."""
        if self.settings.mode == "off":
            return [], []
        counting = self.settings.mode == "options"
        pings: list[tuple[Binding, str]] = []
        dead: list[Binding] = []
        seen: set[_Key] = set()
        for b in bindings:
            if not self.eligible(b, now):
                continue
            key = _key(b)
            seen.add(key)
            branch = self._waiting.pop(key, None)
            if branch is not None:  # the previous ping went unanswered
                self._by_branch.pop(branch, None)
                self._lost[key] = self._lost.get(key, 0) + 1
            max_lost = self.settings.max_lost
            if counting and max_lost and self._lost.get(key, 0) >= max_lost:
                dead.append(b)
                self._lost.pop(key, None)
                continue
            branch = new_branch()
            if counting:
                self._waiting[key] = branch
                self._by_branch[branch] = key
            pings.append((b, branch))
        self._forget(seen)
        return pings, dead

    def answered(self, branch: str) -> bool:
        """A response to the ping with Via ``branch`` arrived: its binding is alive.
        False when the branch is not one we wait for (late or unknown)."""
        key = self._by_branch.pop(branch, None)
        if key is None:
            return False
        self._waiting.pop(key, None)
        self._lost.pop(key, None)
        return True

    def unsent(self, branch: str) -> None:
        """The ping with Via ``branch`` could not be sent (no listener for its flow here,
        e.g. another node's binding): it is not waited for and never counts as lost."""
        key = self._by_branch.pop(branch, None)
        if key is not None:
            self._waiting.pop(key, None)

    def lost(self, b: Binding) -> int:
        """Pings in a row the binding has not answered."""
        return self._lost.get(_key(b), 0)

    def _forget(self, seen: set[_Key]) -> None:
        """Drop the state of bindings that are gone, expired or were refreshed."""
        for key in [k for k in self._waiting if k not in seen]:
            self._by_branch.pop(self._waiting.pop(key), None)
        for key in [k for k in self._lost if k not in seen]:
            del self._lost[key]


def _key(b: Binding) -> _Key:
    return (b.aor, b.contact, b.call_id, b.cseq, b.remote)


def options_ping(b: Binding, via_host: str, branch: str, tag: str, call_id: str) -> bytes:
    """The OPTIONS that pings binding ``b`` (RFC 3261 §11), sent from our interface
    ``via_host`` (``host:port``, IPv6 in brackets) over UDP: Request-URI and To are the registered
    Contact, so the UA recognises it as addressed to itself."""
    host = via_host.rsplit(":", 1)[0]
    lines = [
        f"OPTIONS {b.contact} SIP/2.0",
        f"Via: SIP/2.0/UDP {via_host};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:keepalive@{host}>;tag={tag}",
        f"To: <{b.contact}>",
        f"Call-ID: {call_id}",
        "CSeq: 1 OPTIONS",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()
