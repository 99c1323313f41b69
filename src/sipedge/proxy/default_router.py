"""The router used when the config names none: registrar, authentication, static routes.

Policy (never an open relay), in the order an operator of kamailio.cfg would write it:

1. a sequential request that follows our own Record-Route, or a request that follows a
   Path or Record-Route entry carrying our flow token, goes to its next hop; an initial
   request that only preloads a Route to us goes through the steps below like any other;
2. REGISTER for one of our domains: trusted sources register at once, anyone else is
   challenged (401) first; the registrar answers (RFC 3261 §10.3);
3. a request whose From is one of our users must authenticate (407) unless the source is
   trusted (RFC 3261 §22.3); ACK and CANCEL are never challenged;
4. a static route (Request-URI domain and/or user prefix) sends the request to its
   upstream(s), several of them in parallel; for a foreign domain only trusted or
   authenticated callers may use it;
5. a request for one of our domains goes to the AOR's bindings (forking by q), else to
   ``default_upstream`` (e.g. a PBX), else 404 for an unknown user and 480 for a known
   user with no binding;
6. a trusted or authenticated caller may reach any other domain; anyone else gets 403.

With NAT traversal on (``nat``), a REGISTER from a NATed client is saved with its flow
(requests for it then go there, not to its private Contact), and a REGISTER relayed to
another registrar gets our Path entry carrying its flow token (RFC 3327), added in
``on_branch`` where the interface it leaves on is known.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ..sip.uri import URI
from .hooks import BaseRouter, BranchInfo, Decision, Relay, RequestContext, Respond, Target

if TYPE_CHECKING:
    from ..sip.message import Request
    from ..transport.base import Flow


@dataclass(frozen=True, slots=True)
class StaticRoute:
    """A route rule: every given match must hold; first matching rule wins."""

    name: str
    to: tuple[URI, ...]
    domain: str | None = None
    user_prefix: str | None = None
    strip: int = 0
    prefix: str = ""
    tls_profile: str = ""
    media_set: str = ""

    def matches(self, uri: URI) -> bool:
        """Whether the Request-URI ``uri`` matches this rule."""
        if self.domain is not None and uri.host.lower() != self.domain.lower():
            return False
        return self.user_prefix is None or (uri.user or "").startswith(self.user_prefix)


class AuthOutcomeLike(Protocol):
    """What the router needs from an authentication result."""

    @property
    def ok(self) -> bool: ...
    @property
    def username(self) -> str | None: ...
    @property
    def status(self) -> int: ...
    @property
    def headers(self) -> list[tuple[str, str]]: ...


class AuthService(Protocol):
    """Digest authentication (implemented by :class:`sipedge.auth.service.Authenticator`)."""

    async def check(
        self, req: Request, *, proxy: bool, expect_user: str | None = None
    ) -> AuthOutcomeLike: ...

    async def user_exists(self, username: str) -> bool: ...


class RegisterOutcomeLike(Protocol):
    """What the router needs from a REGISTER outcome."""

    @property
    def status(self) -> int: ...
    @property
    def reason(self) -> str: ...
    @property
    def headers(self) -> list[tuple[str, str]]: ...


class RegistrarService(Protocol):
    """The registrar (implemented by :class:`sipedge.registrar.location.Registrar`)."""

    async def register(
        self, req: Request, flow: Flow, *, nat: bool = False
    ) -> RegisterOutcomeLike: ...

    async def targets(self, aor: str) -> list[Target]: ...

    @staticmethod
    def aor_of(uri: URI) -> str: ...


class SecurityService(Protocol):
    """Ban counting and toll-fraud checks (implemented by :class:`sipedge.security.Security`)."""

    def auth_failed(
        self, source_ip: str, username: str | None, now: float, *, trusted: bool = False
    ) -> object: ...

    def check_call(self, account: str, destination: str, now: float) -> VerdictLike: ...

    def call_started(self, account: str, call_id: str) -> None: ...


class VerdictLike(Protocol):
    """What the router needs from a security verdict."""

    @property
    def blocked(self) -> bool: ...
    @property
    def status(self) -> int | None: ...
    @property
    def reason(self) -> str | None: ...


class NatService(Protocol):
    """NAT traversal (implemented by :class:`sipedge.nat.policy.NatTraversal`)."""

    def signalling_nated(self, msg: Request, flow: Flow) -> bool: ...

    def add_path(self, out: Request, received: Request, flow: Flow) -> bool: ...


@dataclass(frozen=True, slots=True)
class DefaultRouterConfig:
    """What the default router needs from the config and the app."""

    routes: tuple[StaticRoute, ...] = ()
    default_upstream: URI | None = None
    registrar: RegistrarService | None = None
    auth: AuthService | None = None
    security: SecurityService | None = None
    clock: Callable[[], float] = time.monotonic
    extra: dict[str, object] = field(default_factory=dict)
    nat: NatService | None = None
    #: Untrusted callers get the same 404 for a user without binding as for no such user
    #: (no user enumeration); trusted peers still get 480 vs 404 (RFC 3261 §21.4.18/§21.4.4).
    hide_users: bool = True


NO_CHALLENGE = frozenset({"ACK", "CANCEL"})


class DefaultRouter(BaseRouter):
    """Registrar, authentication and static routing (see the module docstring)."""

    def __init__(self, config: DefaultRouterConfig) -> None:
        self.config = config

    def on_branch(self, ctx: RequestContext, branch: BranchInfo) -> Awaitable[None] | None:
        """A REGISTER relayed to another registrar from a NATed or stream client gets our
        Path entry with its flow token (RFC 3327 §5.2; see :meth:`NatService.add_path`)."""
        nat = self.config.nat
        if nat is not None and ctx.request.method == "REGISTER":
            nat.add_path(branch.request, ctx.request, ctx.flow)
        return None

    def on_request(self, ctx: RequestContext) -> Decision | Awaitable[Decision]:
        decision = self.fast_path(ctx)
        if decision is not None:
            return decision
        return self._slow(ctx)

    def answers_register(self, ctx: RequestContext) -> bool:
        """Whether ``ctx`` is a REGISTER our registrar answers (never relayed): the proxy
        then handles it without a server transaction (:mod:`sipedge.proxy.lane`)."""
        return ctx.for_us and self.config.registrar is not None and ctx.request.method == "REGISTER"

    def fast_path(self, ctx: RequestContext) -> Decision | None:
        """Decide without awaiting anything when no registrar or auth step is needed."""
        if ctx.loose_routed and (ctx.dialog_routed or ctx.flow_routed):
            # A sequential request following the Record-Route we signed for its dialog, or
            # a request following a Path/Record-Route entry with our flow token: on to its
            # next hop (§16.4). Any other request that names us in a Route (an initial one
            # preloading it, or one with a made-up To tag) is judged like any other below
            # (else anyone could relay anywhere through us).
            return Relay([Target()])
        c = self.config
        if c.registrar is None and c.auth is None:
            return self._route(ctx, authenticated=False)
        if ctx.trusted and ctx.request.method != "REGISTER" and not ctx.for_us:
            return self._route(ctx, authenticated=False)
        return None

    async def _slow(self, ctx: RequestContext) -> Decision:
        req = ctx.request
        c = self.config
        if self.answers_register(ctx) and c.registrar is not None:
            return await self._register(ctx, c.registrar)
        authenticated = False
        if self._must_authenticate(ctx) and c.auth is not None:
            user = req.from_.uri.user
            result = await c.auth.check(req, proxy=True, expect_user=user)
            if not result.ok:
                self._count_failure(ctx, result, user)
                return Respond(result.status, None, result.headers)
            authenticated = True
            refused = self._fraud_check(ctx, user or "")
            if refused is not None:
                return refused
        if ctx.for_us and c.registrar is not None and req.method != "REGISTER":
            local = await self._to_local_user(ctx, c.registrar)
            if local is not None:
                return local
        return self._route(ctx, authenticated=authenticated)

    def _count_failure(
        self, ctx: RequestContext, result: AuthOutcomeLike, user: str | None
    ) -> None:
        """Wrong or malformed credentials count towards a ban (fail2ban style)."""
        security = self.config.security
        if security is not None and getattr(result, "failed", False):
            security.auth_failed(ctx.flow.remote[0], user, self.config.clock())

    def _fraud_check(self, ctx: RequestContext, account: str) -> Decision | None:
        """Toll-fraud limits on calls by an authenticated account to other domains."""
        security = self.config.security
        req = ctx.request
        if security is None or req.method != "INVITE" or ctx.for_us:
            return None
        verdict = security.check_call(account, req.uri.user or "", self.config.clock())
        if verdict.blocked:
            return Respond(verdict.status or 403, verdict.reason or "Call not allowed")
        security.call_started(account, req.call_id)
        return None

    def _must_authenticate(self, ctx: RequestContext) -> bool:
        """A caller claiming to be one of our users must prove it (RFC 3261 §22.3)."""
        req = ctx.request
        return (
            self.config.auth is not None
            and not ctx.trusted
            and req.method not in NO_CHALLENGE
            and not ctx.in_dialog
            and ctx.identity.is_local_host(req.from_.uri)
        )

    async def _register(self, ctx: RequestContext, registrar: RegistrarService) -> Decision:
        req = ctx.request
        auth = self.config.auth
        if auth is not None and not ctx.trusted:
            result = await auth.check(req, proxy=False, expect_user=req.to.uri.user)
            if not result.ok:
                self._count_failure(ctx, result, req.to.uri.user)
                return Respond(result.status, None, result.headers)
        nat = self.config.nat
        behind_nat = nat is not None and nat.signalling_nated(req, ctx.flow)
        outcome = await registrar.register(req, ctx.flow, nat=behind_nat)
        return Respond(outcome.status, outcome.reason, outcome.headers)

    async def _to_local_user(
        self, ctx: RequestContext, registrar: RegistrarService
    ) -> Decision | None:
        uri = ctx.request.uri
        if not uri.user:
            return None
        targets = await registrar.targets(registrar.aor_of(uri))
        if targets:
            return Relay(targets)
        if self._static_rule(uri) is not None or self.config.default_upstream is not None:
            return None  # let the static route or the upstream PBX handle it
        if self.config.hide_users and not ctx.trusted:
            return Respond(404)
        auth = self.config.auth
        if auth is not None and not await auth.user_exists(uri.user):
            return Respond(404)
        return Respond(480)

    def _static_rule(self, uri: URI) -> StaticRoute | None:
        for rule in self.config.routes:
            if rule.matches(uri):
                return rule
        return None

    def _route(self, ctx: RequestContext, *, authenticated: bool) -> Decision:
        uri = ctx.request.uri
        allowed = ctx.trusted or authenticated
        rule = self._static_rule(uri)
        if rule is not None:
            if not (allowed or ctx.for_us):
                return Respond(403, "Relaying Forbidden")
            return Relay(_rule_targets(rule, uri))
        if ctx.for_us:
            if self.config.default_upstream is not None:
                return Relay([Target(dst=self.config.default_upstream)])
            return Respond(404)
        if allowed:
            return Relay([Target()])
        return Respond(403, "Relaying Forbidden")


def _rule_targets(rule: StaticRoute, uri: URI) -> list[Target]:
    new_uri: URI | None = None
    if rule.strip or rule.prefix:
        new_uri = uri.copy()
        new_uri.user = rule.prefix + (uri.user or "")[rule.strip :]
    return [
        Target(uri=new_uri, dst=dst, tls_profile=rule.tls_profile, media_set=rule.media_set)
        for dst in rule.to
    ]
