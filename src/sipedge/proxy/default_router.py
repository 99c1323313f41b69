"""The router used when the config names none: static routes from the TOML config.

Policy (never an open relay):
- a sequential request that follows our own Record-Route goes to its next hop;
- a static route (Request-URI domain and/or user prefix) sends the request to its
  upstream(s), several of them in parallel; for a foreign domain only trusted sources may
  use it;
- a request for one of our domains goes to ``default_upstream`` (e.g. the PBX), else 404;
- a trusted source may reach any other domain; anyone else gets 403.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..sip.uri import URI
from .hooks import BaseRouter, Decision, Relay, RequestContext, Respond, Target


@dataclass(frozen=True, slots=True)
class StaticRoute:
    """A route rule: every given match must hold; first matching rule wins."""

    name: str
    to: tuple[URI, ...]
    domain: str | None = None
    user_prefix: str | None = None
    strip: int = 0
    prefix: str = ""

    def matches(self, uri: URI) -> bool:
        """Whether the Request-URI ``uri`` matches this rule."""
        if self.domain is not None and uri.host.lower() != self.domain.lower():
            return False
        return self.user_prefix is None or (uri.user or "").startswith(self.user_prefix)


@dataclass(frozen=True, slots=True)
class DefaultRouterConfig:
    """What the default router needs from the config."""

    routes: tuple[StaticRoute, ...] = ()
    default_upstream: URI | None = None
    extra: dict[str, object] = field(default_factory=dict)


class DefaultRouter(BaseRouter):
    """Static routing from the config (see the module docstring for the policy)."""

    def __init__(self, config: DefaultRouterConfig) -> None:
        self.config = config

    def on_request(self, ctx: RequestContext) -> Decision:
        req = ctx.request
        if ctx.loose_routed:
            return Relay([Target()])
        uri = req.uri
        for rule in self.config.routes:
            if rule.matches(uri):
                if not (ctx.trusted or ctx.for_us):
                    return Respond(403, "Relaying Forbidden")
                return Relay(_rule_targets(rule, uri))
        if ctx.for_us:
            if self.config.default_upstream is not None:
                return Relay([Target(dst=self.config.default_upstream)])
            return Respond(404)
        if ctx.trusted:
            return Relay([Target()])
        return Respond(403, "Relaying Forbidden")


def _rule_targets(rule: StaticRoute, uri: URI) -> list[Target]:
    new_uri: URI | None = None
    if rule.strip or rule.prefix:
        new_uri = uri.copy()
        new_uri.user = rule.prefix + (uri.user or "")[rule.strip :]
    return [Target(uri=new_uri, dst=dst) for dst in rule.to]
