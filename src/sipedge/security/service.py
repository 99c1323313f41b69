"""The :class:`Security` facade the proxy calls: rules, floods, auth failures, bans, fraud.

Where the proxy calls it (ARCHITECTURE.md §3):

* the transport, before parsing a datagram: ``security.is_banned(ip, now)`` (O(1)); drop
  the datagram when true;
* the proxy core, after parsing and before routing and authentication:
  ``check_request(req, ip, now, trusted=..., proxy_ips=...)``; on DROP and BAN send
  nothing, on REJECT answer ``verdict.status``/``verdict.reason``;
* the auth step, whenever credentials were sent and rejected (a wrong password, an unknown
  user, or an Authorization that does not parse, i.e. a 400 from the authenticator, but not
  the first 401/407 challenge of a request without credentials):
  ``auth_failed(ip, username, now)``;
* before forwarding a call of an authenticated account: ``check_call(account, dest, now)``,
  then ``call_started``/``call_ended``.

Bans go to the :class:`BanList`. The embedded :class:`MemoryBanList` is updated at once;
another list's ``ban`` coroutine is handed to ``spawn`` (default: a task on the running
loop, or run inline when there is no loop and the coroutine does not suspend).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..config.problems import ConfigError
from ..sip.errors import ProtocolError
from ..sip.message import Request
from .bans import BanList, MemoryBanList, log_token
from .defaults import default_rules, parse_rules
from .flood import AuthFailSettings, AuthFailures, FloodDetector, FloodSettings
from .fraud import FraudGuard, FraudSettings
from .rules import ACCEPT, Action, Rule, RuleTable, TableSettings, Verdict

__all__ = ["RuleEngine", "Security", "SecurityConfig"]

log = logging.getLogger("sipedge.security")

Spawn = Callable[[Coroutine[Any, Any, None]], object]


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    """Everything the security package takes from the config.

    ``rules_file``: an operator rule file (TOML, format in ``defaults.py``); without one the
    shipped rules apply (unless ``use_default_rules`` is false). ``dry_run`` overrides the
    file's ``dry_run`` when not None. ``flood``/``auth`` None turns that detection off.
    ``never_ban``: networks (CIDR) that are never put on the ban list.
    """

    rules_file: str | Path | None = None
    use_default_rules: bool = True
    dry_run: bool | None = None
    flood: FloodSettings | None = field(default_factory=FloodSettings)
    auth: AuthFailSettings | None = field(default_factory=AuthFailSettings)
    fraud: FraudSettings = field(default_factory=FraudSettings)
    never_ban: tuple[str, ...] = ()


_BANNED = Verdict(Action.DROP, rule="banned", detail="source is banned")


class RuleEngine:
    """The live rule table: the operator's file (if any) then the shipped rules.

    :meth:`reload` re-reads the file; a file with errors leaves the running table in place
    and raises :class:`ConfigError`. ``counters`` counts hits per rule (``rule.<name>``)
    and per outcome (``rules.drop``, ``rules.alarm``, ``rules.dry_run``, ...).
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        default_rules: Iterable[Rule] = (),
        dry_run: bool | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self._defaults = tuple(default_rules)
        self._dry_run = dry_run
        self._text: str | None = None
        self.counters: Counter[str] = Counter()
        self.table = RuleTable(self._defaults, self._force(TableSettings()))
        if self.path is not None:
            self.reload()

    def _force(self, settings: TableSettings) -> TableSettings:
        return settings if self._dry_run is None else replace(settings, dry_run=self._dry_run)

    def reload(self) -> bool:
        """Re-read the rule file; return whether the table changed."""
        if self.path is None:
            return False
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError([f"{self.path}: cannot read: {exc.strerror}"]) from None
        if text == self._text:
            return False
        rules, settings = parse_rules(text, source=str(self.path))
        if settings.use_defaults:
            rules += [r for r in self._defaults if r.name not in settings.disable]
        names = [r.name for r in rules]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ConfigError([f"{self.path}: rule names {dup} clash with the shipped rules"])
        self.table = RuleTable(rules, self._force(settings))
        self._text = text
        log.info("security rules loaded: %d rules from %s", len(rules), self.path)
        return True

    def check(self, req: Request, source_ip: str, proxy_ips: Sequence[str] = ()) -> Verdict:
        """Evaluate ``req``; log and count what matched."""
        out = self.table.evaluate(req, source_ip, proxy_ips)
        v = out.verdict
        c = self.counters
        for name in out.hits:
            c[f"rule.{name}"] += 1
        for name in v.alarms:
            c["rules.alarm"] += 1
            log.warning(
                "sipedge ALARM rule=%s ip=%s method=%s", name, log_token(source_ip), req.method
            )
        if v.dry_run:
            c["rules.dry_run"] += 1
            log.warning(
                "sipedge DRYRUN rule=%s ip=%s would=%s",
                v.rule,
                log_token(source_ip),
                v.would and v.would.value,
            )
        elif v.blocked:
            c[f"rules.{v.action.value}"] += 1
            if v.rule == "score":
                c["rules.score"] += 1
        return v


class Security:
    """The security checks of one proxy instance (no shared state between instances)."""

    def __init__(
        self,
        config: SecurityConfig | None = None,
        *,
        bans: BanList | None = None,
        spawn: Spawn | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = cfg = config or SecurityConfig()
        self.bans: BanList = bans if bans is not None else MemoryBanList(clock)
        shipped = default_rules()[0] if cfg.use_default_rules else []
        self.rules = RuleEngine(cfg.rules_file, default_rules=shipped, dry_run=cfg.dry_run)
        self.flood = FloodDetector(cfg.flood) if cfg.flood is not None else None
        self.auth = AuthFailures(cfg.auth) if cfg.auth is not None else None
        self.fraud = FraudGuard(cfg.fraud)
        self._never_ban = [ipaddress.ip_network(n, strict=False) for n in cfg.never_ban]
        self._spawn = spawn
        self._tasks: set[asyncio.Task[None]] = set()
        self._counters: Counter[str] = Counter()

    # ----------------------------------------------------------------- requests
    def is_banned(self, ip: str, now: float) -> bool:
        """The cheap per-source drop before parsing (one dict look-up)."""
        return self.bans.is_banned(ip, now)

    def check_request(
        self,
        req: Request,
        source_ip: str,
        now: float,
        *,
        trusted: bool = False,
        proxy_ips: Sequence[str] = (),
    ) -> Verdict:
        """Ban list, flood detection, then the rule table, for one request.

        A trusted source is never counted for floods nor banned, and skips the rule table
        unless the table's ``check_trusted`` is set (a BAN for it becomes a DROP).
        """
        c = self._counters
        c["security.checked"] += 1
        if not trusted:
            if self.bans.is_banned(source_ip, now):
                c["security.banned_drop"] += 1
                return _BANNED
            flood = self.flood
            if flood is not None and flood.hit(source_ip, now):
                return self._flooded(flood, source_ip, now)
        elif not self.rules.table.settings.check_trusted:
            return ACCEPT
        verdict = self.rules.check(req, source_ip, proxy_ips)
        if verdict.action is Action.BAN and (
            trusted or not self._ban(source_ip, verdict.ban_seconds, f"rule:{verdict.rule}", now)
        ):
            return replace(verdict, action=Action.DROP, ban_seconds=0.0)
        return verdict

    def _flooded(self, flood: FloodDetector, ip: str, now: float) -> Verdict:
        self._counters["security.flood"] += 1
        seconds = flood.settings.ban_seconds
        flood.forget(ip)
        detail = f"over {flood.settings.reqs_density_per_unit} requests per"
        detail += f" {flood.settings.sampling_time_unit:g} s"
        if self._ban(ip, seconds, "flood", now):
            return Verdict(Action.BAN, rule="flood", detail=detail, ban_seconds=seconds)
        return Verdict(Action.DROP, rule="flood", detail=detail)

    # ----------------------------------------------------------------- authentication
    def auth_failed(
        self, source_ip: str, username: str | None, now: float, *, trusted: bool = False
    ) -> Verdict:
        """Record rejected credentials (``username`` None when the header did not parse).

        Returns BAN when this failure got ``source_ip`` banned (other sources that guessed
        the same user's password may be banned along with it), else ACCEPT.
        """
        self._counters["security.auth_failure"] += 1
        log.info("sipedge AUTHFAIL ip=%s user=%s", log_token(source_ip), log_token(username or "-"))
        if trusted or self.auth is None:
            return ACCEPT
        seconds = self.auth.settings.ban_seconds
        mine: str | None = None
        for ip, reason in self.auth.failed(source_ip, username, now):
            if self._ban(ip, seconds, reason, now) and ip == source_ip:
                mine = reason
        if mine is None:
            return ACCEPT
        return Verdict(Action.BAN, rule=mine, detail="authentication failures", ban_seconds=seconds)

    # ----------------------------------------------------------------- toll fraud
    def check_call(self, account: str, destination: str, now: float) -> Verdict:
        """Toll-fraud check of a call by ``account`` to ``destination`` (403 when refused)."""
        return self.fraud.check_call(account, destination, now)

    def call_started(self, account: str, call_id: str) -> None:
        """A call of ``account`` was forwarded (for the concurrent-call limit)."""
        self.fraud.call_started(account, call_id)

    def call_ended(self, call_id: str) -> None:
        """The call ``call_id`` is over."""
        self.fraud.call_ended(call_id)

    # ----------------------------------------------------------------- management
    def reload(self) -> bool:
        """Re-read the rule file; True when the table changed (ConfigError: old one kept)."""
        return self.rules.reload()

    async def unban(self, ip: str) -> bool:
        """Lift a ban and forget the source's flood and failure counts."""
        if self.flood is not None:
            self.flood.forget(ip)
        if self.auth is not None:
            self.auth.forget(ip)
        return await self.bans.unban(ip)

    def counters(self) -> dict[str, int]:
        """Every counter of the package by name (for metrics)."""
        out: Counter[str] = Counter(self._counters)
        out.update(self.rules.counters)
        out.update(self.fraud.counters)
        bans_counters = getattr(self.bans, "counters", None)
        if isinstance(bans_counters, Counter):
            out.update(bans_counters)
        if self.flood is not None:
            out["flood.sources"] = len(self.flood)
        return dict(out)

    # ----------------------------------------------------------------- bans
    def _protected(self, ip: str) -> bool:
        if not self._never_ban:
            return False
        try:
            addr = ipaddress.ip_address(ip.strip("[]"))
        except ValueError:
            return False
        return any(addr.version == n.version and addr in n for n in self._never_ban)

    def _ban(self, ip: str, seconds: float, reason: str, now: float) -> bool:
        """Put ``ip`` on the ban list; False when it is protected by ``never_ban``."""
        if self._protected(ip):
            self._counters["security.ban_skipped"] += 1
            return False
        self._counters["security.ban"] += 1
        bans = self.bans
        if isinstance(bans, MemoryBanList):
            bans.ban_now(ip, seconds, reason, now)
        elif self._spawn is not None:
            self._spawn(bans.ban(ip, seconds, reason, now=now))
        else:
            self._run(bans.ban(ip, seconds, reason, now=now))
        return True

    def _run(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            _run_inline(coro)
            return
        task = loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("ban list update failed: %r", task.exception())


def _run_inline(coro: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine that never suspends (outside an event loop)."""
    try:
        coro.send(None)
    except StopIteration:
        return
    coro.close()
    raise ProtocolError("BanList.ban suspended outside an event loop; pass spawn=")
