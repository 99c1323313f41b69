"""The operations of :class:`~sipedge.mgmt.appfacade.AppFacade` on bans, transports, the
media relay, security rules, reloads, the log level and the message capture."""

from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING

from ..runtime.logs import current_level, set_level
from ..security import Security
from ..security.bans import log_token
from ..transport.base import Address, normalize_ip
from . import schemas as s
from .capture import Capture
from .facade import Invalid, Unavailable
from .monitor import Monitor

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger("sipedge.mgmt")


def addr(a: Address) -> str:
    """``ip:port``, ``[v6]:port`` for IPv6."""
    ip, port = a
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


class OpsMixin:
    """Needs ``app``, ``monitor`` and ``capture`` (set by the facade)."""

    app: App
    monitor: Monitor
    capture: Capture | None

    # ------------------------------------------------------------------ bans
    def _security(self) -> Security:
        if self.app.security is None:
            raise Unavailable("security is disabled ([security] enabled = false)")
        return self.app.security

    def bans(self) -> list[s.Ban]:
        """Active bans, soonest expiry first."""
        if self.app.security is None:
            return []
        now = self.app.loop.time()
        return [
            s.Ban(ip=b.ip, reason=b.reason, expires_in=max(0.0, b.until - now))
            for b in self.app.security.bans.list(now)
        ]

    @staticmethod
    def _ip(text: str) -> str:
        try:
            return normalize_ip(text.strip().removeprefix("[").removesuffix("]"))
        except ValueError:
            raise Invalid(f"{text!r} is not an IP address") from None

    async def add_ban(self, request: s.BanRequest) -> s.Ban:
        """Ban an address; trusted networks (never banned) are refused."""
        security = self._security()
        ip = self._ip(request.ip)
        addr_ = ipaddress.ip_address(ip)
        for net in security.config.never_ban:
            network = ipaddress.ip_network(net, strict=False)
            if addr_.version == network.version and addr_ in network:
                raise Invalid(f"{ip} is in {network}, which is never banned (server.trusted)")
        reason = log_token(request.reason)
        now = self.app.loop.time()
        await security.bans.ban(ip, request.seconds, reason, now=now)
        return s.Ban(ip=ip, reason=reason, expires_in=request.seconds)

    async def remove_ban(self, ip: str) -> bool:
        """Lift a ban (and forget the source's flood and failure counts)."""
        return await self._security().unban(self._ip(ip))

    # ------------------------------------------------------------------ transports, relay
    def transports(self) -> s.Transports:
        """Listeners and stream connections."""
        now = self.app.loop.time()
        listeners = [
            s.Listener(transport=t, host=a[0], port=a[1]) for t, a in self.app.transport.listeners()
        ]
        conns = [
            s.Connection(
                id=c.flow.conn_id,
                transport=c.flow.transport,
                local=addr(c.sockname),
                remote=addr(c.flow.remote),
                inbound=c.inbound,
                age=max(0.0, now - c.created),
                idle=max(0.0, now - c.last_activity),
            )
            for c in self.app.transport.connections()
        ]
        return s.Transports(listeners=listeners, connections=conns)

    def relay(self) -> list[s.RelayNode]:
        """rtpengine nodes with their health and the last ping round trip."""
        if self.app.relay is None:
            return []
        rtt = self.monitor.rtt
        out: list[s.RelayNode] = []
        for n in self.app.relay.status():
            last = rtt.get(n.label)
            out.append(
                s.RelayNode(
                    label=n.label,
                    weight=n.weight,
                    available=n.available,
                    pending=n.pending,
                    commands=n.commands,
                    timeouts=n.timeouts,
                    failures=n.failures,
                    retransmits=n.retransmits,
                    rtt_ms=last * 1000.0 if last is not None else None,
                )
            )
        return out

    # ------------------------------------------------------------------ rules and reload
    def rules(self) -> s.RulesReport:
        """The live rule table with hits per rule, and what dry run would have done."""
        engine = self._security().rules
        table = engine.table
        hits = engine.counters
        rules = [
            s.Rule(
                name=r.name,
                field=r.field,
                match=r.match.value,
                value=r.value,
                action=r.action.value,
                dry_run=r.dry_run or table.settings.dry_run,
                hits=hits.get(f"rule.{r.name}", 0),
            )
            for r in table.rules
        ]
        counters = {k: v for k, v in hits.items() if k.startswith("rules.")}
        path = str(engine.path) if engine.path is not None else None
        return s.RulesReport(
            file=path, dry_run=table.settings.dry_run, rules=rules, counters=counters
        )

    def reload_rules(self) -> s.ReloadItem:
        """Re-read the security rule file (a bad file keeps the running rules)."""
        return _item("security rules", self.app.reload_rules(), _UNAVAILABLE["security rules"])

    def reload(self) -> s.ReloadReport:
        """What SIGHUP reloads (TLS certificates, security rules, routes), and what cannot."""
        items = [
            _item(
                part, outcome, _UNAVAILABLE.get(part, s.ReloadItem(part=part, status="unavailable"))
            )
            for part, outcome in self.app.reload().items()
        ]
        items[2:2] = [
            s.ReloadItem(part="users", status="live", detail="users.db is re-read when it changes")
        ]
        items.append(
            s.ReloadItem(
                part="other settings",
                status="restart",
                detail="listeners and the other sections need a restart",
            )
        )
        return s.ReloadReport(ok=all(i.status != "failed" for i in items), items=items)

    # ------------------------------------------------------------------ logs, capture
    def log_level(self) -> s.LogLevelName:
        """The root logger's level."""
        return current_level()

    def set_log_level(self, level: s.LogLevelName) -> None:
        """Change the root logger's level (not persisted)."""
        set_level(level)
        log.warning("log level set to %s by the API", level)

    def captured_calls(self, limit: int, query: str) -> list[s.CapturedCall]:
        """Call-IDs in the capture, most recently active first."""
        if self.capture is None:
            return []
        return [
            s.CapturedCall(
                call_id=c.call_id,
                first=c.first,
                last=c.last,
                messages=c.messages,
                first_line=c.first_line,
            )
            for c in self.capture.calls(limit, query)
        ]

    def captured(self, call_id: str) -> list[s.CapturedMessage]:
        """The captured messages of ``call_id``, oldest first."""
        if self.capture is None:
            return []
        return [
            s.CapturedMessage(
                seq=m.seq,
                time=m.time,
                direction="in" if m.inbound else "out",
                transport=m.flow.transport,
                src=addr(m.src),
                dst=addr(m.dst),
                first_line=m.first_line,
                bytes=len(m.data),
                text=m.text,
            )
            for m in self.capture.messages(call_id)
        ]


#: What an "unavailable" outcome is reported as, per part.
_UNAVAILABLE = {
    "security rules": s.ReloadItem(part="security rules", status="unchanged", detail="disabled"),
    "routes": s.ReloadItem(
        part="routes",
        status="unavailable",
        detail="no configuration file, or a custom router (server.router)",
    ),
}


def _item(part: str, outcome: str, unavailable: s.ReloadItem) -> s.ReloadItem:
    """A reload outcome of :class:`~sipedge.app.App` ("reloaded", "failed: why", ...)."""
    if outcome.startswith("failed: "):
        return s.ReloadItem(part=part, status="failed", detail=outcome[8:])
    if outcome == "reloaded":
        return s.ReloadItem(part=part, status="reloaded")
    if outcome == "unchanged":
        return s.ReloadItem(part=part, status="unchanged")
    return unavailable
