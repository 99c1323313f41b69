"""The composition root: builds every service from the config and wires them together.

Nothing else in sipedge constructs services; they get their dependencies through their
constructors (ARCHITECTURE.md §4.7).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import importlib
import inspect
import ipaddress
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .app_media import build_calls
from .auth import Authenticator, SqliteCredentialStore
from .config import Config
from .config.values import Listen
from .ha.wiring import node_registrar, shared_state
from .mgmt.server import ManagementServer, start_management
from .nat.pinger import NatPinger
from .nat.policy import NatTraversal
from .nat.setup import build_nat, build_pinger, pings_answered
from .proxy.core import Proxy, ProxySettings
from .proxy.default_router import DefaultRouter, DefaultRouterConfig, StaticRoute
from .proxy.hooks import Router
from .proxy.routing import Identity, Interface
from .proxy.targets import LocalListener, Locator
from .registrar import MemoryLocationStore, Registrar, RegistrarPolicy
from .runtime.engine import Engine
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
from .transport.base import Flow, TransportConfig, TransportError
from .transport.dns import Resolver
from .transport.manager import TransportManager
from .transport.tls import ServerTls, TlsClientConfig, TlsServerConfig
from .transport.ws import WsConfig

if TYPE_CHECKING:
    from .ha.paths import NodeLocationStore
    from .proxy.flowtoken import FlowTokens

log = logging.getLogger("sipedge")


class App:
    """A running sipedge instance (what :func:`serve` builds)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.loop = asyncio.get_running_loop()
        c = config
        self.layer = _layer(c)
        self.engine = Engine(self.layer, self.loop, _limits(c))
        receive = self._receive if pings_answered(c) else self.engine.on_message
        self.transport = TransportManager(receive, _transport_config(c))
        self.pinger: NatPinger | None = None
        self.engine.transport = self.transport
        self.listeners: list[LocalListener] = []
        self.proxy: Proxy | None = None
        self.location: MemoryLocationStore | NodeLocationStore | None = None
        self.security: Security | None = None
        self._background: list[asyncio.Task[None]] = []
        self.stopping = asyncio.Event()
        self.mgmt: ManagementServer | None = None
        self.shared = shared_state(config, self.loop.time)
        calls = build_calls(config, self.engine.spawn, self.shared.dialogs if self.shared else None)
        self.dialogs = calls.dialogs
        self.relay = calls.relay
        self.media = calls.media

    async def start(self) -> None:
        """Bind every listener and build the proxy."""
        c = self.config
        if self.shared is not None:  # bans and dialogs of the node we take over from
            await self.shared.start(self.dialogs)
        server_tls = (
            _server_tls(c) if any(x.proto in ("tls", "wss") for x in c.server.listen) else None
        )
        _client_tls(c, self.transport)
        ws = _ws_config(c)
        for lst in c.server.listen:
            bound = await self.transport.start_listener(
                lst.proto,
                lst.host,
                lst.port,
                tls=server_tls if lst.proto in ("tls", "wss") else None,
                ws=ws if lst.proto in ("ws", "wss") else None,
            )
            self.listeners.append(LocalListener(bound, _interface(c, lst.proto, lst, bound)))
        identity = Identity([lst.iface for lst in self.listeners], c.server.domains)
        resolver = Resolver(
            nameservers=[str(ns) for ns in c.dns.nameservers] or None,
            port=c.dns.port,
            timeout=c.dns.timeout,
            max_entries=c.dns.cache_size,
        )
        locator = Locator(self.listeners, resolver)
        tokens, nat = build_nat(c)
        registrar, auth = self._features(identity, tokens)
        bans = self.shared.bans if self.shared is not None else None
        security = _security(c, self.loop, bans) if c.security.enabled else None
        self.security = security
        self.engine.bans = security
        proxy = Proxy(
            layer=self.layer,
            locator=locator,
            identity=identity,
            router=load_router(c, registrar, auth, security, nat),
            settings=ProxySettings(
                record_route=c.proxy.record_route,
                double_record_route=c.proxy.double_record_route,
                max_forwards=c.proxy.max_forwards,
                timer_c=c.proxy.timer_c,
                user_agent=c.server.user_agent,
            ),
            clock=self.loop.time,
            spawn=self.engine.spawn,
            is_trusted=trust_checker(c.server.trusted),
            flow_alive=self.transport.flow_alive,
            tokens=tokens,
            security=security,
            dialogs=self.dialogs,
            media=self.media,
            nat=nat,
        )
        if registrar is not None:
            self._start_pinger(registrar, locator)
        proxy.after_async = self.engine.pump
        if self.relay is not None:
            await self.relay.start()
        self.engine.proxy = proxy
        self.proxy = proxy
        names = ", ".join(
            str(Listen(x.iface.transport, x.bound[0], x.bound[1])) for x in self.listeners
        )
        log.info("sipedge listening on %s", names)
        self.mgmt = await start_management(self)

    def _start_pinger(self, registrar: Registrar, locator: Locator) -> None:
        """NAT keepalives to the registrar's UDP bindings ([nat] keepalive)."""
        self.pinger = build_pinger(
            self.config,
            self.location,
            send=self.transport.send,
            clock=registrar.clock,
            via_for=lambda flow: locator.interface_of(flow).via_host(),
            remove=registrar.remove_binding,
        )
        if self.pinger is not None:
            self._background.append(self.loop.create_task(self.pinger.run()))

    def _receive(self, data: bytes, flow: Flow) -> None:
        """Transport input: answers to our NAT keepalives stop here, the rest goes on."""
        pinger = self.pinger
        if pinger is None or not pinger.claim(data, flow):
            self.engine.on_message(data, flow)

    def _features(
        self, identity: Identity, tokens: FlowTokens
    ) -> tuple[Registrar | None, Authenticator | None]:
        """The registrar and the authenticator, with their stores under state_dir."""
        c = self.config
        state = Path(c.server.state_dir)
        registrar: Registrar | None = None
        if c.registrar.enabled:
            if c.registrar.persist:
                state.mkdir(parents=True, exist_ok=True)
            policy = RegistrarPolicy(
                min_expires=c.registrar.min_expires,
                max_expires=c.registrar.max_expires,
                default_expires=c.registrar.default_expires,
                max_contacts=c.registrar.max_contacts,
            )
            if self.shared is not None:  # HA: shared bindings, reachable from every node
                self.location, registrar = node_registrar(
                    c,
                    self.shared,
                    identity=identity,
                    listeners=self.listeners,
                    tokens=tokens,
                    policy=policy,
                )
            else:
                path = state / "location.db" if c.registrar.persist else None
                self.location = MemoryLocationStore(path)
                registrar = Registrar(self.location, policy)
            self._background.append(self.loop.create_task(_expire_loop(registrar)))
        users = SqliteCredentialStore(c.auth.users_db or state / "users.db")
        realm = c.auth.realm or (
            c.server.domains[0] if c.server.domains else identity.interfaces[0].host
        )
        secret = c.auth.secret.encode() if c.auth.secret else os.urandom(32)
        auth = Authenticator(
            users,
            realm,
            secret=secret,
            nonce_lifetime=c.auth.nonce_lifetime,
            algorithms=tuple(c.auth.algorithms),
            clock=time.time,
        )
        return registrar, auth

    def reload(self) -> None:
        """SIGHUP: reload TLS certificates and the security rule file from disk. New
        connections use the new certificates, open ones keep theirs; a bad file keeps the
        old certificates or rules and is logged."""
        try:
            self.transport.reload_tls()
            log.warning("TLS certificates reloaded")
        except TransportError as exc:
            log.error("TLS certificate reload failed, keeping the old ones: %s", exc)
        if self.security is not None:
            self.security.reload()

    async def stop(self, grace: float) -> None:
        """Graceful stop: refuse new calls, let transactions end (bounded), close."""
        if self.proxy is not None:
            self.proxy.draining = True
        deadline = self.loop.time() + grace
        while self.engine.busy and self.loop.time() < deadline:
            await asyncio.sleep(0.05)
        if self.mgmt is not None:
            await self.mgmt.close()
        for task in self._background:
            task.cancel()
        self.engine.close()
        await self.transport.close()
        if self.relay is not None:
            await self.relay.close()
        if self.location is not None:
            self.location.close()
        if self.shared is not None:
            await self.shared.close()


async def serve(config: Config, ready: Callable[[App], None] | None = None) -> None:
    """Run sipedge until SIGTERM or SIGINT, then stop gracefully."""
    app = App(config)
    await app.start()
    tune_gc()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(sig, app.stopping.set)
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGHUP, app.reload)
    if ready is not None:
        ready(app)
    await app.stopping.wait()
    log.info("shutting down (grace %.1fs)", config.server.shutdown_grace)
    await app.stop(config.server.shutdown_grace)


async def _expire_loop(registrar: Registrar, every: float = 1.0) -> None:
    """Remove expired bindings on time (RFC 3261 §10.3: a binding lives until it expires)."""
    while True:
        await asyncio.sleep(every)
        try:
            await registrar.expire(time.time())
        except Exception:  # a task boundary: log and keep expiring
            log.exception("binding expiry failed")


def tune_gc() -> None:
    """Keep collector pauses short under load: objects made at start-up (modules, config)
    are frozen out of every later collection, and the youngest generation is collected
    less often (most per-message objects die by reference counting before it runs)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


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
        routes = tuple(
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
        up = config.proxy.default_upstream
        return DefaultRouter(
            DefaultRouterConfig(
                routes=routes,
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


def _interface(config: Config, proto: str, lst: Listen, bound: tuple[str, int]) -> Interface:
    adv = config.server.advertise.get(lst) if config.server.advertise else None
    if adv is not None:
        return Interface(proto, adv.host, adv.port or bound[1])
    host = bound[0]
    if host in ("0.0.0.0", "::"):
        host = _guess_address(host == "::")
        log.warning("listener %s is a wildcard; advertising %s (set server.advertise)", lst, host)
    return Interface(proto, host, bound[1])


def _guess_address(v6: bool) -> str:
    family = socket.AF_INET6 if v6 else socket.AF_INET
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, family):
            ip = str(info[4][0])
            if not ipaddress.ip_address(ip).is_loopback:
                return ip
    except OSError:
        pass
    return "::1" if v6 else "127.0.0.1"


def _layer(c: Config) -> Any:
    from .sip.transaction.layer import TransactionLayer

    return TransactionLayer(TimerConfig(t1=c.timers.t1, t2=c.timers.t2, t4=c.timers.t4))


def _server_tls(c: Config) -> ServerTls:
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


def _client_tls(c: Config, transport: TransportManager) -> None:
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


def _ws_config(c: Config) -> WsConfig:
    return WsConfig(
        origins=tuple(c.ws.origins),
        handshake_timeout=c.ws.handshake_timeout,
        ping_interval=c.ws.ping_interval or None,
        ping_timeout=c.ws.ping_timeout,
        max_message_size=c.ws.max_message_size,
    )


def _security(c: Config, loop: asyncio.AbstractEventLoop, bans: BanList | None = None) -> Security:
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


def _limits(c: Config) -> Limits:
    return Limits(
        max_message_size=c.limits.max_message_size,
        max_headers=c.limits.max_headers,
        max_line_length=c.limits.max_line_length,
        max_vias=c.limits.max_vias,
    )


def _transport_config(c: Config) -> TransportConfig:
    return TransportConfig(
        max_message_size=c.limits.max_message_size,
        max_connections=c.tcp.max_connections,
        max_connections_per_ip=c.tcp.max_connections_per_ip,
        idle_timeout=c.tcp.idle_timeout,
        message_timeout=c.tcp.message_timeout,
        connect_timeout=c.tcp.connect_timeout,
    )
