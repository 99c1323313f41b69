"""Transaction timers (RFC 3261 §17, Table 4; RFC 6026 §8.4 and §8.7 for Timers L and M).

Nothing here reads a clock: a timer is a duration; the machines turn it into a deadline by
adding the ``now`` they are given. Timer C belongs to the proxy core (§16.8), not here.

Reliable transports (TCP, TLS, SCTP, WS, WSS) never arm the retransmission timers A, E and G,
and Timers D, I, J and K are zero on them (§17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from ..errors import ProtocolError


class FastEnum(Enum):
    """An Enum hashed by identity (members are singletons), in C rather than in Python:
    the state tables look members up on every message."""

    __hash__ = object.__hash__


class Timer(FastEnum):
    """The lettered transaction timers (RFC 3261 Table 4, RFC 6026 §8.4/§8.7)."""

    A = "A"  # INVITE request retransmit (client, unreliable only)
    B = "B"  # INVITE transaction timeout (client)
    D = "D"  # wait for response retransmits after a non-2xx final (INVITE client)
    E = "E"  # non-INVITE request retransmit (client, unreliable only)
    F = "F"  # non-INVITE transaction timeout (client)
    G = "G"  # INVITE final response retransmit (server, unreliable only)
    H = "H"  # wait for ACK receipt (INVITE server)
    I = "I"  # noqa: E741  wait for ACK retransmits (INVITE server)
    J = "J"  # wait for request retransmits (non-INVITE server)
    K = "K"  # wait for response retransmits (non-INVITE client)
    L = "L"  # wait for INVITE retransmits after a 2xx (INVITE server, RFC 6026)
    M = "M"  # wait for 2xx retransmits (INVITE client, RFC 6026)


# Timers that retransmit: they are armed only on unreliable transports.
RETRANSMIT_TIMERS = frozenset({Timer.A, Timer.E, Timer.G})


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """T1, T2 and T4 (RFC 3261 §17.1.1.1, Table 4) and the UDP value of Timer D.

    ``t1`` is the RTT estimate (default 500 ms), ``t2`` the cap on non-INVITE request and
    INVITE response retransmit intervals (4 s), ``t4`` the time a message may stay in the
    network (5 s). ``timer_d`` is Timer D on unreliable transports ("at least 32 s").
    """

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    timer_d: float = 32.0

    def __post_init__(self) -> None:
        for name in ("t1", "t2", "t4", "timer_d"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ProtocolError(f"TimerConfig.{name} must be a positive number")
        if self.t2 < self.t1:
            raise ProtocolError("TimerConfig.t2 must not be below t1")

    def duration(self, timer: Timer, reliable: bool) -> float | None:
        """Initial duration of ``timer``, or None when it is not used on this transport."""
        if reliable and timer in RETRANSMIT_TIMERS:
            return None
        t1 = self.t1
        if timer in (Timer.A, Timer.E, Timer.G):
            return t1  # §17.1.1.2, §17.1.2.2, §17.2.1: first interval is T1
        if timer in (Timer.B, Timer.F, Timer.H, Timer.L, Timer.M):
            return 64 * t1  # §17.1.1.2, §17.1.2.2, §17.2.1; RFC 6026 §8.4, §8.7
        if timer is Timer.D:
            return 0.0 if reliable else self.timer_d  # §17.1.1.2
        if timer is Timer.J:
            return 0.0 if reliable else 64 * t1  # §17.2.2
        return 0.0 if reliable else self.t4  # Timers I (§17.2.1) and K (§17.1.2.2)

    def backoff(self, timer: Timer, interval: float) -> float:
        """The next interval of a retransmission timer after one that lasted ``interval``.

        Timer A doubles without bound (§17.1.1.2; Timer B ends it); E and G double up to
        T2 (§17.1.2.2, §17.2.1).
        """
        if timer is Timer.A:
            return 2 * interval
        if timer in (Timer.E, Timer.G):
            return min(2 * interval, self.t2)
        raise ProtocolError(f"Timer {timer.value} does not retransmit")
