"""The ``[ha]`` section: where shared state lives (embedded memory or Redis) for clustering."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import model_validator

from .base import Section, setting
from .values import Invalid, Items, parse_listen

_URL_SCHEMES = ("redis://", "rediss://", "unix://")
_SENTINEL = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):[0-9]{1,5}")
_KEY_PREFIX = re.compile(r"[A-Za-z0-9_.:{}-]*")


class HaConfig(Section):
    """Shared state of a cluster: registrations, dialogs and bans in Redis so that another
    node (behind a floating IP, or a second active node) carries on with them."""

    backend: Literal["memory", "redis"] = setting(
        "memory",
        'Where registrations, dialogs and bans live: "memory" (this process, with '
        'registrar.persist) or "redis" (shared by every node).',
    )
    redis_url: str = setting(
        "redis://127.0.0.1:6379/0",
        "Redis server, redis://[:PASSWORD@]HOST:PORT/DB, rediss:// (TLS) or unix://PATH.",
    )
    sentinels: Items[str] = setting(
        (), 'Redis Sentinels as "HOST:PORT"; when set they name the master (redis_url ignored).'
    )
    sentinel_master: str = setting("sipedge", "Name of the master the Sentinels watch.")
    key_prefix: str = setting(
        "sipedge:", "Prefix of every Redis key and channel; one prefix per cluster."
    )
    node: str = setting("", 'Name of this node in logs and ban messages; "" = hostname-pid.')
    timeout: float = setting(
        1.0, "Seconds one Redis command (or connect) may take before it counts as failed.", gt=0.0
    )
    retry_interval: float = setting(
        1.0, "Seconds between reconnection attempts while Redis is unreachable.", gt=0.0
    )
    mode: Literal["single-active", "active-active"] = setting(
        "single-active",
        '"single-active": one node at a time (a floating IP under Pacemaker); a node that '
        'starts takes over every stored call. "active-active": every node serves at once '
        "(DNS SRV); a node that starts takes back only the calls stored under its ha.node.",
    )
    stream_max_expires: int = setting(
        300,
        "Longest registration granted over TCP, TLS, WS and WSS (0 = registrar.max_expires): "
        "such clients lose their connection when a node fails and must register again soon.",
        ge=0,
    )
    flow_timer: int = setting(
        30,
        "Flow-Timer sent to RFC 5626 Outbound clients on TCP, TLS, WS and WSS (0 = none): "
        "the seconds between their keepalives, so they notice a dead connection soon.",
        why="RFC 5626 §4.4.1",
        ge=0,
    )
    peer_listener: str = setting(
        "",
        "Listener (as in server.listen) on which the other nodes reach the users registered "
        'on this node over a connection or a NAT flow; "" = the first UDP listener, else '
        "TCP, else TLS.",
    )

    @model_validator(mode="after")
    def _check_redis(self) -> HaConfig:
        if not self.redis_url.startswith(_URL_SCHEMES):
            raise Invalid(
                f'"{self.redis_url}" is not a Redis URL',
                'write "redis://HOST:PORT/DB" (or rediss://, unix://)',
                key="redis_url",
            )
        for i, s in enumerate(self.sentinels):
            if not _SENTINEL.fullmatch(s):
                raise Invalid(
                    f'"{s}" is not HOST:PORT', 'write "10.0.0.5:26379"', key=f"sentinels[{i}]"
                )
        if self.peer_listener:
            try:
                parse_listen(self.peer_listener)
            except Invalid as exc:
                raise Invalid(exc.problem, exc.fix, key="peer_listener") from None
        if not _KEY_PREFIX.fullmatch(self.key_prefix):
            raise Invalid(
                f'key_prefix "{self.key_prefix}" has characters outside [A-Za-z0-9_.:{{}}-]',
                'write something like "sipedge:" or "edge-eu:"',
                key="key_prefix",
            )
        return self
