"""The scanner rule table: ordered rules that match one attribute of a request.

Theory of operation. A :class:`Rule` names an attribute of the request (``user_agent``,
``from_user``, ``source_ip``, ``header:X-Foo``, ... see :data:`ATTRIBUTES`), a match type
(exact, prefix, regex, CIDR), a value and an action. A :class:`RuleTable` is an immutable,
compiled list of rules; :meth:`RuleTable.evaluate` walks it in order for one request:

* ``accept`` stops the walk and lets the request through (an operator's exception);
* ``alarm`` is noted (log line and counter) and the walk goes on; its ``score`` is added up,
  and when the sum reaches ``score_threshold`` the table applies ``score_action`` (weak
  signs that are only damning together, e.g. the shapes of a patched sipvicious);
* ``drop``, ``reject`` (403 by default) and ``ban`` stop the walk with that verdict.

A dry-run rule (or a whole table in dry-run) acts like an alarm: the verdict stays ACCEPT
and carries ``dry_run=True``, ``would`` and the rule's name.

Values may hold the placeholders ``${sender_ip}`` (the request's source address) and
``${proxy_ip}`` (any address of this proxy). A placeholder stands for one address, the
same one wherever its name appears in the value; in a regex it matches one IP-address
token equal to that address. URI hosts are compared in lower case without IPv6 brackets,
so ``voipgw@${sender_ip}`` matches ``<sip:voipgw@[2001:DB8::1]>`` from ``2001:db8::1``.

Rule files are TOML (format and parser in ``defaults.py``); ``service.RuleEngine`` holds
the live table and reloads it.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import Enum

from ..sip.errors import ParseError
from ..sip.message import Request
from ..sip.uri import URI

__all__ = [
    "ATTRIBUTES",
    "Action",
    "Evaluation",
    "MatchType",
    "Rule",
    "RuleAction",
    "RuleTable",
    "TableSettings",
    "Verdict",
    "validate_rule",
]


class Action(Enum):
    """What the caller must do with a request or call."""

    ACCEPT = "accept"
    DROP = "drop"  # silence: no response, the scanner learns nothing
    REJECT = "reject"  # answer ``status``/``reason`` (403 by default)
    BAN = "ban"  # drop, and the source is on the ban list for ``ban_seconds``


@dataclass(frozen=True, slots=True)
class Verdict:
    """A decision. ``reason`` is the reason phrase of a REJECT; ``detail`` is for the log.

    In dry-run ``action`` is ACCEPT, ``dry_run`` is true and ``would`` is the action the
    rule ``rule`` would have taken. ``alarms`` names the alarm rules that matched.
    """

    action: Action
    status: int = 0
    reason: str = ""
    rule: str | None = None
    detail: str = ""
    ban_seconds: float = 0.0
    dry_run: bool = False
    would: Action | None = None
    alarms: tuple[str, ...] = ()

    @property
    def blocked(self) -> bool:
        """Whether the request must not go on (DROP, REJECT or BAN)."""
        return self.action is not Action.ACCEPT


ACCEPT = Verdict(Action.ACCEPT)


class RuleAction(Enum):
    """What a rule says to do when it matches."""

    ACCEPT = "accept"
    DROP = "drop"
    REJECT = "reject"
    ALARM = "alarm"
    BAN = "ban"


class MatchType(Enum):
    """How a rule's value is compared with the attribute."""

    EXACT = "exact"
    PREFIX = "prefix"
    REGEX = "regex"  # re.search: anchor with ^ and $ to match the whole value
    CIDR = "cidr"  # the attribute is an IP address inside this network


_BLOCKING = {
    RuleAction.DROP: Action.DROP,
    RuleAction.REJECT: Action.REJECT,
    RuleAction.BAN: Action.BAN,
}


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the table. ``methods`` empty means every method."""

    name: str
    field: str
    match: MatchType
    value: str
    action: RuleAction
    status: int = 403
    reason: str = "Forbidden"
    ban_seconds: float | None = None  # None: the table's ban_seconds
    score: int = 0
    methods: frozenset[str] = frozenset()
    ignore_case: bool = False
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class TableSettings:
    """Table-wide settings (the ``[settings]`` table of a rule file)."""

    dry_run: bool = False
    ban_seconds: float = 3600.0
    score_threshold: int = 3  # 0 turns scoring off
    score_action: RuleAction = RuleAction.DROP
    check_trusted: bool = False  # apply the table to trusted sources too
    use_defaults: bool = True  # the shipped rules follow the file's own rules
    disable: frozenset[str] = frozenset()  # names of shipped rules to leave out


# ----------------------------------------------------------------- request attributes


def _host(host: str) -> str:
    """A URI host for comparison: lower case, IPv6 brackets removed."""
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host.lower()


def _addr(uri: URI) -> str:
    """``user@host`` (or ``host``, or the tel number) of a URI."""
    host = _host(uri.host)
    if uri.user is None:
        return host
    return f"{uri.user}@{host}" if host else uri.user


def _top_branch(req: Request) -> str | None:
    return req.vias[0].branch if req.vias else None


def _first_contact(req: Request) -> URI | None:
    contacts = req.contacts
    return contacts[0].uri if isinstance(contacts, list) and contacts else None


def _contact(req: Request) -> str | None:
    uri = _first_contact(req)
    return None if uri is None else _addr(uri)


def _contact_host(req: Request) -> str | None:
    uri = _first_contact(req)
    return None if uri is None else _host(uri.host)


_Extract = Callable[[Request], str | None]

_EXTRACTORS: dict[str, _Extract] = {
    "method": lambda r: r.method,
    "ruri": lambda r: _addr(r.uri),
    "ruri_user": lambda r: r.uri.user,
    "ruri_host": lambda r: _host(r.uri.host),
    "from": lambda r: _addr(r.from_.uri),
    "from_user": lambda r: r.from_.uri.user,
    "from_host": lambda r: _host(r.from_.uri.host),
    "from_display": lambda r: r.from_.display_text,
    "from_tag": lambda r: r.from_tag,
    "to": lambda r: _addr(r.to.uri),
    "to_user": lambda r: r.to.uri.user,
    "to_host": lambda r: _host(r.to.uri.host),
    "to_display": lambda r: r.to.display_text,
    "contact": _contact,
    "contact_host": _contact_host,
    "user_agent": lambda r: r.header("user-agent"),
    "call_id": lambda r: r.call_id,
    "via_branch": _top_branch,
}

#: Attribute names a rule may use, besides ``source_ip`` and ``header:<Name>``.
ATTRIBUTES = frozenset({*_EXTRACTORS, "source_ip"})


def _extractor(name: str) -> _Extract:
    """The function reading attribute ``name`` (``source_ip`` is read by the caller)."""
    if name.startswith("header:"):
        header = name[7:]
        return lambda r: r.header(header)
    return _EXTRACTORS[name]


def _extract(read: _Extract, req: Request) -> str | None:
    try:
        return read(req)
    except ParseError:
        return None  # a malformed header matches nothing; the proxy's checks answer 400


# ----------------------------------------------------------------- compiled rules

_PLACEHOLDER_RE = re.compile(r"\$\{([A-Za-z_]+)\}")
_PLACEHOLDERS = ("sender_ip", "proxy_ip")
_IP_TOKEN = r"[0-9A-Fa-f:.]+"


class _Matcher:
    """A rule compiled for fast checks."""

    __slots__ = ("fixed", "network", "parts", "regex", "rule")

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.parts: list[str] = _PLACEHOLDER_RE.split(rule.value)  # odd items: placeholders
        self.fixed: str | None = None
        self.regex: re.Pattern[str] | None = None
        self.network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
        if rule.match is MatchType.CIDR:
            self.network = ipaddress.ip_network(rule.value, strict=False)
        elif rule.match is MatchType.REGEX:
            flags = re.IGNORECASE if rule.ignore_case else 0
            self.regex = re.compile(_regex_source(self.parts), flags)
        elif len(self.parts) == 1:
            self.fixed = rule.value.lower() if rule.ignore_case else rule.value

    def matches(self, value: str, sender_ip: str, proxy_ips: Sequence[str]) -> bool:
        rule = self.rule
        if self.network is not None:
            return _in_network(value, self.network)
        if rule.ignore_case:
            value = value.lower()
        if self.regex is not None:
            return self._regex_matches(value, sender_ip, proxy_ips)
        if self.fixed is not None:
            return self._compare(value, self.fixed)
        return any(self._compare(value, c) for c in self._candidates(sender_ip, proxy_ips))

    def _compare(self, value: str, wanted: str) -> bool:
        if self.rule.match is MatchType.EXACT:
            return value == wanted
        return value.startswith(wanted)

    def _candidates(self, sender_ip: str, proxy_ips: Sequence[str]) -> list[str]:
        """The value with placeholders filled in: one address per placeholder name, the
        same wherever the name appears."""
        names = sorted(set(self.parts[1::2]))
        choices = {"sender_ip": [sender_ip], "proxy_ip": list(proxy_ips)}
        out = []
        for combo in itertools.product(*(choices[n] for n in names)):
            fill = dict(zip(names, combo, strict=True))
            text = "".join(p if i % 2 == 0 else fill[p] for i, p in enumerate(self.parts))
            out.append(text.lower() if self.rule.ignore_case else text)
        return out

    def _regex_matches(self, value: str, sender_ip: str, proxy_ips: Sequence[str]) -> bool:
        assert self.regex is not None
        m = self.regex.search(value)
        if m is None:
            return False
        groups = m.groupdict()
        if "sender_ip" in groups and groups["sender_ip"].lower() != sender_ip.lower():
            return False
        proxy = groups.get("proxy_ip")
        return proxy is None or proxy.lower() in (p.lower() for p in proxy_ips)


def _regex_source(parts: list[str]) -> str:
    """The regex with each placeholder as a named IP-token group (a back-reference after
    its first use)."""
    seen: set[str] = set()
    out: list[str] = []
    for i, part in enumerate(parts):
        if i % 2 == 0:
            out.append(part)
        elif part in seen:
            out.append(f"(?P={part})")
        else:
            seen.add(part)
            out.append(f"(?P<{part}>{_IP_TOKEN})")
    return "".join(out)


def _in_network(value: str, net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        addr = ipaddress.ip_address(_host(value))
    except ValueError:
        return False
    return addr.version == net.version and addr in net


class _Index:
    """The rules on one field found by dict look-ups: exact values, prefixes, and exact
    values with one kind of placeholder (looked up with the addresses in the value turned
    back into placeholders)."""

    __slots__ = ("exact", "lengths", "prefix", "templ")

    def __init__(self) -> None:
        self.exact: dict[str, list[int]] = {}
        self.prefix: dict[str, list[int]] = {}
        self.templ: dict[str, list[int]] = {}
        self.lengths: tuple[int, ...] = ()

    def add(self, i: int, rule: Rule) -> bool:
        """Index rule number ``i`` if it can be; False when it must be scanned."""
        value = rule.value.lower() if rule.ignore_case else rule.value
        kinds = set(_PLACEHOLDER_RE.findall(value))
        if rule.match is MatchType.EXACT and not kinds:
            self.exact.setdefault(value, []).append(i)
        elif rule.match is MatchType.PREFIX and not kinds and value:
            self.prefix.setdefault(value, []).append(i)
            self.lengths = tuple(sorted({len(p) for p in self.prefix}))
        elif rule.match is MatchType.EXACT and len(kinds) == 1:
            self.templ.setdefault(value, []).append(i)
        else:
            return False
        return True

    def lookup(self, value: str, sender_ip: str, proxy_ips: Sequence[str]) -> list[int]:
        out = list(self.exact.get(value, ()))
        for n in self.lengths:
            if n > len(value):
                break
            out += self.prefix.get(value[:n], ())
        if self.templ:
            variants = {value.replace(ip, _SENDER) for ip in (sender_ip,) if ip and ip in value}
            variants.update(value.replace(ip, _PROXY) for ip in proxy_ips if ip and ip in value)
            for v in variants:
                out += self.templ.get(v, ())
        return out


_SENDER = "${sender_ip}"
_PROXY = "${proxy_ip}"


class _FieldRules:
    """The rules on one attribute: two indexes (case-sensitive, ignore_case) and the rest."""

    __slots__ = ("exact", "folded", "methods", "read", "scan")

    def __init__(self, name: str) -> None:
        self.read: _Extract | None = None if name == "source_ip" else _extractor(name)
        self.exact: _Index | None = None
        self.folded: _Index | None = None
        self.scan: list[tuple[int, _Matcher]] = []
        self.methods: frozenset[str] | None = frozenset()  # None: some rule takes every method

    def add(self, i: int, rule: Rule) -> None:
        if self.methods is not None:
            self.methods = self.methods | rule.methods if rule.methods else None
        if rule.ignore_case:
            index = self.folded = self.folded or _Index()
        else:
            index = self.exact = self.exact or _Index()
        if not index.add(i, rule):
            self.scan.append((i, _Matcher(rule)))


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What one walk of the table found (before logging and counting)."""

    verdict: Verdict
    hits: tuple[str, ...]  # every rule that matched, in order


class RuleTable:
    """An immutable, compiled rule table.

    Each attribute is read once. Exact and prefix rules are found by dict look-ups
    (:class:`_Index`); the others (regex, CIDR, prefix with placeholders) are tried one by
    one. The rules found are then taken in table order, so the result is that of a walk
    from the top.
    """

    __slots__ = ("_fields", "rules", "settings")

    def __init__(self, rules: Sequence[Rule], settings: TableSettings | None = None) -> None:
        self.rules = tuple(rules)
        self.settings = settings or TableSettings()
        self._fields: dict[str, _FieldRules] = {}
        for i, rule in enumerate(self.rules):
            fr = self._fields.get(rule.field)
            if fr is None:
                fr = self._fields[rule.field] = _FieldRules(rule.field)
            fr.add(i, rule)

    def evaluate(self, req: Request, source_ip: str, proxy_ips: Sequence[str] = ()) -> Evaluation:
        """Walk the table for ``req`` from ``source_ip`` (pure: no logging, no counting)."""
        found: list[int] = []
        lowered: tuple[str, list[str]] | None = None
        method = req.method
        for fr in self._fields.values():
            if fr.methods is not None and method not in fr.methods:
                continue
            value = source_ip if fr.read is None else _extract(fr.read, req)
            if value is None:
                continue
            if fr.exact is not None:
                found += fr.exact.lookup(value, source_ip, proxy_ips)
            if fr.folded is not None:
                if lowered is None:
                    lowered = (source_ip.lower(), [p.lower() for p in proxy_ips])
                found += fr.folded.lookup(value.lower(), *lowered)
            for i, m in fr.scan:
                if m.matches(value, source_ip, proxy_ips):
                    found.append(i)
        found.sort()
        return self._decide([self.rules[i] for i in found], method)

    def _decide(self, matched: list[Rule], method: str) -> Evaluation:
        """The verdict of the rules that matched, in table order."""
        settings = self.settings
        alarms: list[str] = []
        hits: list[str] = []
        score = 0
        dry: Verdict | None = None
        for rule in matched:
            if rule.methods and method not in rule.methods:
                continue
            hits.append(rule.name)
            if rule.action is RuleAction.ACCEPT:
                verdict = Verdict(Action.ACCEPT, rule=rule.name, alarms=tuple(alarms))
                return Evaluation(verdict, tuple(hits))
            if rule.action is RuleAction.ALARM:
                alarms.append(rule.name)
                score += rule.score
                continue
            verdict = self._block(rule.name, rule, tuple(alarms))
            if not (rule.dry_run or settings.dry_run):
                return Evaluation(verdict, tuple(hits))
            dry = dry or verdict
        if settings.score_threshold and score >= settings.score_threshold:
            scored = Rule("score", "", MatchType.EXACT, "", settings.score_action)
            verdict = self._block("score", scored, tuple(alarms), f"score {score}")
            if not settings.dry_run:
                return Evaluation(verdict, tuple(hits))
            dry = dry or verdict
        if dry is not None:
            verdict = replace(
                dry, action=Action.ACCEPT, dry_run=True, would=dry.action, alarms=tuple(alarms)
            )
            return Evaluation(verdict, tuple(hits))
        return Evaluation(Verdict(Action.ACCEPT, alarms=tuple(alarms)), tuple(hits))

    def _block(self, name: str, rule: Rule, alarms: tuple[str, ...], detail: str = "") -> Verdict:
        action = _BLOCKING.get(rule.action, Action.DROP)
        detail = detail or f"rule {name}"
        if action is Action.REJECT:
            return Verdict(action, rule.status, rule.reason, name, detail, alarms=alarms)
        seconds = rule.ban_seconds if rule.ban_seconds is not None else self.settings.ban_seconds
        seconds = seconds if action is Action.BAN else 0.0
        return Verdict(action, 0, "", name, detail, ban_seconds=seconds, alarms=alarms)


def validate_rule(rule: Rule) -> None:
    """Raise ValueError (or ``re.error``) when ``rule`` cannot be used, saying why."""
    if rule.field not in ATTRIBUTES and not (rule.field.startswith("header:") and rule.field[7:]):
        raise ValueError(f"field {rule.field!r} unknown; fix: one of {sorted(ATTRIBUTES)}")
    names = _PLACEHOLDER_RE.findall(rule.value)
    for n in names:
        if n not in _PLACEHOLDERS:
            raise ValueError(f"placeholder ${{{n}}} unknown; fix: ${{sender_ip}} or ${{proxy_ip}}")
    if names and rule.match is MatchType.CIDR:
        raise ValueError("placeholders are not allowed in a cidr rule")
    if rule.action is RuleAction.REJECT and not 400 <= rule.status <= 699:
        raise ValueError(f"status {rule.status}: a reject needs a 4xx-6xx status")
    _Matcher(rule)  # compiles the regex / network now, so errors show at load time
