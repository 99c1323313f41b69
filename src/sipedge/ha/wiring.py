"""What the composition root calls: the shared state ``[ha]`` asks for, and the registrar
and location store of a node that shares its registrations.

Kept apart from :mod:`sipedge.ha.shared` so that a node with the embedded (memory)
backend never imports the Redis client.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ..config import Config

if TYPE_CHECKING:
    from ..proxy.flowtoken import FlowTokens
    from ..proxy.routing import Identity
    from ..proxy.targets import LocalListener
    from ..registrar.service import RegistrarPolicy
    from .paths import NodeLocationStore
    from .registrar import HaRegistrar
    from .shared import SharedState

__all__ = ["node_registrar", "shared_state"]

log = logging.getLogger("sipedge.ha")


def shared_state(config: Config, clock: Callable[[], float]) -> SharedState | None:
    """The Redis-backed stores when ``[ha] backend = "redis"``, else None (no I/O yet:
    :meth:`SharedState.start` connects). ``clock`` is the proxy's clock (``loop.time``)."""
    if config.ha.backend != "redis":
        return None
    from .shared import SharedState

    return SharedState(config.ha, clock)


def node_registrar(
    config: Config,
    shared: SharedState,
    *,
    identity: Identity,
    listeners: Iterable[LocalListener],
    tokens: FlowTokens,
    policy: RegistrarPolicy,
    clock: Callable[[], float] = time.time,
) -> tuple[NodeLocationStore, HaRegistrar]:
    """The location store and registrar of an HA node: bindings only this node can reach
    carry its Path entry (:mod:`sipedge.ha.paths`), stream clients get short registrations
    and Flow-Timer (:mod:`sipedge.ha.registrar`). ``tokens`` must be the proxy's flow
    tokens; ``listeners`` the bound ones. Raises ValueError for a bad ``ha.peer_listener``.
    """
    from .paths import NodeLocationStore, NodePaths, peer_interface
    from .registrar import HaRegistrar

    ha = config.ha
    if not config.nat.token_secret:
        log.warning(
            "nat.token_secret is empty: flow tokens and dialog Record-Routes of this node "
            "will not be accepted by the node taking over from it (in-dialog requests from "
            "untrusted callers are then refused); set the same secret on every node"
        )
    iface = peer_interface(listeners, ha.peer_listener)
    store = NodeLocationStore(shared.location, NodePaths(tokens, iface, identity))
    registrar = HaRegistrar(
        store,
        policy,
        clock,
        stream_max_expires=ha.stream_max_expires,
        flow_timer=ha.flow_timer,
    )
    return store, registrar
