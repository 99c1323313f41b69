"""Builders of the composition root: each turns a section of the config into the object
:class:`~sipedge.app.App` wires in (router, TLS, WebSocket, security, limits)."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import importlib
import inspect
import ipaddress
import logging
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .auth import Authenticator
from .config import Config
from .config.values import Listen
from .nat.policy import NatTraversal
from .proxy.default_router import DefaultRouter, DefaultRouterConfig, StaticRoute
from .proxy.hooks import Router
from .proxy.routing import Interface
from .registrar import Registrar
from .security import (
    AccountLimits,
    AuthFailSettings,
    FloodSettings,
    FraudSettings,
    Security,
)
from .security import SecurityConfig as SecurityRules
from .security.bans import BanList
from .sip.parser import Limits
from .sip.transaction.timers import TimerConfig
from .sip.uri import parse_uri
from .transport.base import TransportConfig
from .transport.manager import TransportManager
from .transport.tls import ServerTls, TlsClientConfig, TlsServerConfig
from .transport.ws import WsConfig

log = logging.getLogger("sipedge")


def load_router(
    config: Config,
    registrar: Registrar | None = None,
    auth: Authenticator | None = None,
    security: Security | None = None,
    nat: NatTraversal | None = None,
) -> Router:
    """The router named by ``server.router`` ("module:Class"), else the default one."""
    spec = config.server.router
    if not spec:
        up = config.proxy.default_upstream
        return DefaultRouter(
            DefaultRouterConfig(
                routes=static_routes(config),
                default_upstream=parse_uri(up) if up else None,
                registrar=registrar,
                auth=auth,
                security=security,
                clock=asyncio.get_running_loop().time,
                hide_users=config.security.hide_user_existence,
                nat=nat,
            )
        )
    module_name, _, cls_name = spec.partition(":")
    cls: Any = getattr(importlib.import_module(module_name), cls_name)
    params = inspect.signature(cls).parameters
    router: Router = cls(config) if params else cls()
    return router


def static_routes(config: Config) -> tuple[StaticRoute, ...]:
    """``proxy.routes`` as the default router's rules."""
    return tuple(
        StaticRoute(
            name=r.name,
            to=tuple(parse_uri(str(t)) for t in r.to),
            domain=r.domain or None,
            user_prefix=r.user_prefix or None,
            strip=r.strip,
            prefix=r.prefix,
            tls_profile=r.tls_profile,
            media_set=r.media_set,
        )
        for r in config.proxy.routes
    )


def reload_routes(router: Router, config: Config) -> bool:
    """Give a running default router the routes and upstream of ``config``; False when
    nothing changed. A custom router (``server.router``) is left alone."""
    if not isinstance(router, DefaultRouter):
        return False
    up = config.proxy.default_upstream
    new = dataclasses.replace(
        router.config,
        routes=static_routes(config),
        default_upstream=parse_uri(up) if up else None,
    )
    if (new.routes, new.default_upstream) == (
        router.config.routes,
        router.config.default_upstream,
    ):
        return False
    router.config = new
    return True


def trust_checker(networks: Any) -> Callable[[str], bool]:
    """A cached membership test of an address in the trusted networks."""
    nets = [ipaddress.ip_network(str(n), strict=False) for n in networks]

    @functools.lru_cache(maxsize=4096)
    def trusted(ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr in n for n in nets if n.version == addr.version)

    return trusted


def listener_interface(
    config: Config, proto: str, lst: Listen, bound: tuple[str, int]
) -> Interface:
    adv = config.server.advertise.get(lst) if config.server.advertise else None
    if adv is not None:
        return Interface(proto, adv.host, adv.port or bound[1])
    host = bound[0]
    if host in ("0.0.0.0", "::"):
        host = guess_address(host == "::")
        log.warning("listener %s is a wildcard; advertising %s (set server.advertise)", lst, host)
    return Interface(proto, host, bound[1])


def guess_address(v6: bool) -> str:
    family = socket.AF_INET6 if v6 else socket.AF_INET
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, family):
            ip = str(info[4][0])
            if not ipaddress.ip_address(ip).is_loopback:
                return ip
    except OSError:
        pass
    return "::1" if v6 else "127.0.0.1"


def transaction_layer(c: Config) -> Any:
    from .sip.transaction.layer import TransactionLayer

    return TransactionLayer(TimerConfig(t1=c.timers.t1, t2=c.timers.t2, t4=c.timers.t4))


def server_tls(c: Config) -> ServerTls:
    """The certificates of tls/wss listeners (SNI, mutual TLS), reloadable."""
    return ServerTls(
        TlsServerConfig(
            cert=Path(c.tls.cert),
            key=Path(c.tls.key),
            sni={s.server_name: (Path(s.cert), Path(s.key)) for s in c.tls.sni},
            min_version=c.tls.min_version,
            ciphers=c.tls.ciphers or None,
            client_ca=Path(c.tls.client_ca) if c.tls.client_ca else None,
            require_client_cert=c.tls.require_client_cert,
        )
    )


def client_tls(c: Config, transport: TransportManager) -> None:
    """The default outbound TLS profile and the named ones ([[tls.profiles]])."""
    transport.add_tls_profile(
        None,
        TlsClientConfig(
            ca_bundle=Path(c.tls.ca_bundle) if c.tls.ca_bundle else None,
            verify=c.tls.verify_outbound,
            min_version=c.tls.min_version,
        ),
    )
    for p in c.tls.profiles:
        transport.add_tls_profile(
            p.name,
            TlsClientConfig(
                ca_bundle=Path(p.ca_bundle) if p.ca_bundle else None,
                verify=p.verify,
                cert=Path(p.cert) if p.cert else None,
                key=Path(p.key) if p.key else None,
                server_name=p.server_name or None,
                min_version=c.tls.min_version,
            ),
        )


def ws_config(c: Config) -> WsConfig:
    return WsConfig(
        origins=tuple(c.ws.origins),
        handshake_timeout=c.ws.handshake_timeout,
        ping_interval=c.ws.ping_interval or None,
        ping_timeout=c.ws.ping_timeout,
        max_message_size=c.ws.max_message_size,
    )


def build_security(
    c: Config, loop: asyncio.AbstractEventLoop, bans: BanList | None = None
) -> Security:
    """Scanner rules, flood detection, bans and fraud limits from ``[security]``."""
    sc = c.security

    def limits(international: bool, concurrent: int, per_minute: int) -> AccountLimits:
        return AccountLimits(
            international=international,
            max_concurrent=concurrent or None,
            max_calls_per_minute=per_minute or None,
        )

    fraud = FraudSettings(
        extra_denied_prefixes=tuple(sc.extra_denied_prefixes),
        allowed_prefixes=tuple(sc.allowed_prefixes),
        home_country_code=sc.home_country_code,
        default_limits=limits(sc.international, sc.max_concurrent_calls, sc.max_calls_per_minute),
        accounts={
            a.name: limits(a.international, a.max_concurrent_calls, a.max_calls_per_minute)
            for a in sc.accounts
        },
    )
    return Security(
        SecurityRules(
            rules_file=sc.rules_file or None,
            use_default_rules=sc.default_rules,
            dry_run=True if sc.dry_run else None,  # false: the rule file decides
            flood=FloodSettings(sc.flood_window, sc.flood_density, sc.flood_ban_seconds),
            auth=AuthFailSettings(
                max_failures=sc.auth_max_failures,
                window=sc.auth_window,
                ban_seconds=sc.auth_ban_seconds,
                user_max_failures=sc.auth_user_max_failures,
            ),
            fraud=fraud,
            never_ban=tuple(str(n) for n in c.server.trusted),
        ),
        bans=bans,
        clock=loop.time,
    )


def parser_limits(c: Config) -> Limits:
    return Limits(
        max_message_size=c.limits.max_message_size,
        max_headers=c.limits.max_headers,
        max_line_length=c.limits.max_line_length,
        max_vias=c.limits.max_vias,
    )


def transport_config(c: Config) -> TransportConfig:
    return TransportConfig(
        max_message_size=c.limits.max_message_size,
        max_connections=c.tcp.max_connections,
        max_connections_per_ip=c.tcp.max_connections_per_ip,
        idle_timeout=c.tcp.idle_timeout,
        message_timeout=c.tcp.message_timeout,
        connect_timeout=c.tcp.connect_timeout,
    )
