"""The Redis connection shared by the HA stores, and its health state.

redis-py's pool reconnects by itself: a command after an outage opens a new connection. What
this module adds is the bounded wait (``timeout`` for connect and for every command, so an
unreachable Redis never wedges SIP processing), key naming under one prefix, and one alarm
per state change: ``redis unreachable`` once when the first command fails, ``redis
reachable again`` once when one succeeds, instead of one log line per failed command.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections import Counter
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import RedisError

from ..config.ha import HaConfig

__all__ = ["REDIS_ERRORS", "RedisLink", "connect", "default_node_name"]

log = logging.getLogger("sipedge.ha")

#: What a failed Redis command raises: protocol/connection errors, socket errors, timeouts.
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, asyncio.TimeoutError)


def default_node_name() -> str:
    """``hostname-pid``: unique per process even when two nodes share a host name."""
    return f"{socket.gethostname()}-{os.getpid()}"


class RedisLink:
    """A Redis client with the key prefix, this node's name and the up/down state.

    ``counters``: ``redis.errors``, ``redis.down`` (transitions to unreachable),
    ``redis.up`` (recoveries).
    """

    def __init__(self, redis: Redis, prefix: str = "sipedge:", node: str = "") -> None:
        self.redis = redis
        self.prefix = prefix
        self.node = node or default_node_name()
        self.up = True
        self.last_error = ""
        self.counters: Counter[str] = Counter()

    def key(self, *parts: str) -> str:
        """A key (or channel) name under the prefix: ``key("loc", aor)`` -> ``sipedge:loc:...``."""
        return self.prefix + ":".join(parts)

    def failed(self, what: str, exc: BaseException) -> None:
        """Record a failed command; log an error only when Redis was up until now."""
        self.counters["redis.errors"] += 1
        self.last_error = f"{what}: {exc!r}"
        if self.up:
            self.up = False
            self.counters["redis.down"] += 1
            log.error("redis unreachable (%s: %r); serving from local state", what, exc)

    def succeeded(self) -> None:
        """Record a successful command; log once when Redis comes back."""
        if not self.up:
            self.up = True
            self.counters["redis.up"] += 1
            log.warning("redis reachable again")

    async def ping(self) -> bool:
        """One PING; updates the state and says whether Redis answered."""
        try:
            await self.redis.ping()
        except REDIS_ERRORS as exc:
            self.failed("ping", exc)
            return False
        self.succeeded()
        return True

    async def close(self) -> None:
        """Close every pooled connection."""
        try:
            await self.redis.aclose()
        except REDIS_ERRORS as exc:  # closing a dead connection
            log.debug("closing redis: %r", exc)


def connect(cfg: HaConfig) -> RedisLink:
    """The link described by ``[ha]`` (no I/O yet: connections open on first use)."""
    opts: dict[str, Any] = {
        "socket_timeout": cfg.timeout,
        "socket_connect_timeout": cfg.timeout,
        "socket_keepalive": True,
        "health_check_interval": 30,
    }
    if cfg.sentinels:
        hosts = [_host_port(s) for s in cfg.sentinels]
        sentinel = cast(Any, Sentinel)(hosts, **opts)
        redis = cast(Redis, sentinel.master_for(cfg.sentinel_master, **opts))
    else:
        redis = Redis.from_url(cfg.redis_url, **opts)
    return RedisLink(redis, cfg.key_prefix, cfg.node)


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)
