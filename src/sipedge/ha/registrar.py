""":class:`HaRegistrar`: the registrar of a node that shares its registrations.

A client on a TCP, TLS, WS or WSS connection can only be reached over that connection,
and the connection dies with the node that holds it. UDP clients keep working after a
failover (the next node sends to the same address from the same floating IP), but a
stream client is unreachable until it notices and registers again. So in HA mode:

* their registrations are granted at most ``ha.stream_max_expires`` seconds (RFC 3261
  §10.3 step 7 lets the registrar shorten the interval), so a client that never notices
  the lost connection still registers again within that time;
* an RFC 5626 Outbound client on such a connection gets ``Flow-Timer: ha.flow_timer`` in
  the 200 (RFC 5626 §4.4.1): it then sends a CRLF keepalive at least that often, finds the
  connection gone within about that time and registers again at once (§4.4.1, §4.5).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from ..registrar.location import Registrar
from ..registrar.service import RegisterOutcome, RegistrarPolicy
from ..registrar.store import LocationStore
from ..sip.message import Request
from ..transport.base import Flow

__all__ = ["HaRegistrar", "stream_policy", "with_flow_timer"]


def stream_policy(policy: RegistrarPolicy, stream_max_expires: int) -> RegistrarPolicy:
    """``policy`` with registrations capped at ``stream_max_expires`` seconds (0: no cap),
    never below ``min_expires`` (a client asking the minimum gets it, RFC 3261 §10.3)."""
    if stream_max_expires <= 0:
        return policy
    cap = max(policy.min_expires, min(policy.max_expires, stream_max_expires))
    return dataclasses.replace(
        policy, max_expires=cap, default_expires=min(policy.default_expires, cap)
    )


def with_flow_timer(outcome: RegisterOutcome, flow: Flow, seconds: int) -> RegisterOutcome:
    """``outcome`` with ``Flow-Timer: seconds`` when it is a 2xx for which outbound
    processing was performed (``Supported: outbound``, RFC 5626 §6) on a stream flow."""
    if seconds <= 0 or not flow.is_stream or not 200 <= outcome.status < 300:
        return outcome
    outbound = any(
        name.lower() == "supported" and "outbound" in (t.strip() for t in value.split(","))
        for name, value in outcome.headers
    )
    if not outbound:
        return outcome
    return dataclasses.replace(outcome, headers=[*outcome.headers, ("Flow-Timer", str(seconds))])


class HaRegistrar(Registrar):
    """A :class:`~sipedge.registrar.location.Registrar` for HA nodes (see the module text)."""

    def __init__(
        self,
        store: LocationStore,
        policy: RegistrarPolicy | None = None,
        clock: Callable[[], float] = time.time,
        *,
        stream_max_expires: int = 300,
        flow_timer: int = 30,
    ) -> None:
        super().__init__(store, policy, clock)
        self.stream_policy = stream_policy(self.policy, stream_max_expires)
        self.flow_timer = flow_timer

    def policy_for(self, flow: Flow) -> RegistrarPolicy:
        """The capped policy for a connection, the configured one for UDP."""
        return self.stream_policy if flow.is_stream else self.policy

    async def register(self, req: Request, flow: Flow, *, nat: bool = False) -> RegisterOutcome:
        """:meth:`Registrar.register`, with Flow-Timer for Outbound stream clients."""
        outcome = await super().register(req, flow, nat=nat)
        return with_flow_timer(outcome, flow, self.flow_timer)
