"""The composition root: builds every service from the config and wires them together.

Nothing else in sipedge constructs services; they get their dependencies through their
constructors (ARCHITECTURE.md §4.7).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .app_build import (
    build_security,
    client_tls,
    listener_interface,
    load_router,
    parser_limits,
    reload_routes,
    server_tls,
    transaction_layer,
    transport_config,
    trust_checker,
    ws_config,
)
from .app_media import build_calls
from .auth import Authenticator, SqliteCredentialStore
from .config import Config, ConfigError
from .config.values import Listen
from .ha.wiring import node_registrar, shared_state
from .mgmt.server import ManagementServer, start_management
from .nat.pinger import NatPinger
from .nat.setup import build_nat, build_pinger, node_key, pings_answered
from .proxy.core import Proxy, ProxySettings
from .proxy.default_router import DefaultRouter
from .proxy.lane import RegisterLane
from .proxy.routing import Identity
from .proxy.targets import LocalListener, Locator
from .registrar import MemoryLocationStore, Registrar, RegistrarPolicy
from .runtime.engine import Engine
from .security import (
    Security,
)
from .transport.base import Flow, TransportError
from .transport.dns import Resolver
from .transport.manager import TransportManager

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
        self.layer = transaction_layer(c)
        self.engine = Engine(self.layer, self.loop, parser_limits(c))
        receive = self._receive if pings_answered(c) else self.engine.on_message
        self.transport = TransportManager(receive, transport_config(c))
        self.pinger: NatPinger | None = None
        self.engine.transport = self.transport
        self.listeners: list[LocalListener] = []
        self.proxy: Proxy | None = None
        self.location: MemoryLocationStore | NodeLocationStore | None = None
        self.security: Security | None = None
        self._background: list[asyncio.Task[None]] = []
        self.stopping = asyncio.Event()
        #: Re-reads the configuration file (set by :func:`serve` when there is one).
        self.config_source: Callable[[], Config] | None = None
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
        tls = server_tls(c) if any(x.proto in ("tls", "wss") for x in c.server.listen) else None
        client_tls(c, self.transport)
        ws = ws_config(c)
        for lst in c.server.listen:
            bound = await self.transport.start_listener(
                lst.proto,
                lst.host,
                lst.port,
                tls=tls if lst.proto in ("tls", "wss") else None,
                ws=ws if lst.proto in ("ws", "wss") else None,
            )
            self.listeners.append(
                LocalListener(bound, listener_interface(c, lst.proto, lst, bound))
            )
        identity = Identity([lst.iface for lst in self.listeners], c.server.domains)
        resolver = Resolver(
            nameservers=[str(ns) for ns in c.dns.nameservers] or None,
            port=c.dns.port,
            timeout=c.dns.timeout,
            max_entries=c.dns.cache_size,
        )
        locator = Locator(self.listeners, resolver)
        key = None if c.nat.token_secret else node_key(Path(c.server.state_dir))
        tokens, nat = build_nat(c, key)
        registrar, auth = self._features(identity, tokens)
        bans = self.shared.bans if self.shared is not None else None
        security = build_security(c, self.loop, bans) if c.security.enabled else None
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
        # Eager: the default router over in-process stores (not Redis, whose client needs a
        # current task) decides most REGISTERs without a task of their own.
        eager = self.shared is None and type(proxy.router) is DefaultRouter
        linger = 64 * self.layer.config.t1  # RFC 3261 §17.2.2 Timer J
        self.engine.lane = lane = RegisterLane(proxy, self.engine.send, linger, eager=eager)
        self._background.append(self.loop.create_task(lane.sweep()))
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

    def reload(self) -> dict[str, str]:
        """SIGHUP (and the API): reload TLS certificates, the security rule file and the
        routes from disk; each part's outcome as :meth:`reload_routes` words it. New
        connections use the new certificates, open ones keep theirs; a bad file keeps the
        old certificates, rules or routes and is logged."""
        return {
            "TLS certificates": self.reload_tls(),
            "security rules": self.reload_rules(),
            "routes": self.reload_routes(),
        }

    def reload_tls(self) -> str:
        """Reload the TLS certificates: "reloaded" or "failed: <why>"."""
        try:
            self.transport.reload_tls()
        except TransportError as exc:
            log.error("TLS certificate reload failed, keeping the old ones: %s", exc)
            return f"failed: {exc}"
        log.warning("TLS certificates reloaded")
        return "reloaded"

    def reload_rules(self) -> str:
        """Re-read the security rule file: "reloaded", "unchanged", "unavailable" (security
        off) or "failed: <problems>" (the running rules stay)."""
        if self.security is None:
            return "unavailable"
        try:
            changed = self.security.reload()
        except ConfigError as exc:
            log.error("security rule reload failed, keeping the old rules: %s", exc)
            return "failed: " + "; ".join(exc.problems)
        return "reloaded" if changed else "unchanged"

    def reload_routes(self) -> str:
        """Re-read the configuration file and apply ``proxy.routes`` and
        ``proxy.default_upstream`` to the running router. Returns "reloaded", "unchanged",
        "unavailable" (no file, or a custom router) or "failed: <problems>" (the old routes
        stay)."""
        if self.config_source is None or self.proxy is None:
            return "unavailable"
        try:
            new = self.config_source()
        except ConfigError as exc:
            log.error("configuration reload failed, keeping the old routes: %s", exc)
            return "failed: " + "; ".join(exc.problems)
        if not isinstance(self.proxy.router, DefaultRouter):
            return "unavailable"
        if not reload_routes(self.proxy.router, new):
            return "unchanged"
        log.warning("routes reloaded: %d route(s)", len(new.proxy.routes))
        return "reloaded"

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


async def serve(
    config: Config,
    ready: Callable[[App], None] | None = None,
    source: Callable[[], Config] | None = None,
) -> None:
    """Run sipedge until SIGTERM or SIGINT, then stop gracefully. ``source`` re-reads the
    configuration for SIGHUP and the API's reload (routes)."""
    app = App(config)
    app.config_source = source
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
