"""Rule files (format and parser) and the shipped defaults: scanner rules, IRSF list.

Rule file format (the same for an operator's file; the operator's rules come first, so an
``accept`` rule there can exempt a peer from a shipped rule)::

    [settings]                 # every key optional
    dry_run = false            # report what would be blocked, block nothing
    ban_seconds = 3600         # for "ban" rules without their own ban_seconds
    score_threshold = 3        # alarm scores adding up to this block the request (0: off)
    score_action = "drop"
    check_trusted = false      # trusted sources skip the table unless true
    use_defaults = true        # append the shipped rules below
    disable = ["ua-cisco-sipgateway"]   # shipped rules to leave out, by name

    [[rule]]
    name = "ua-friendly-scanner"   # unique; counters and log lines use it
    field = "user_agent"   # see rules.ATTRIBUTES, or "header:<Name>" for any header
    match = "exact"        # exact | prefix | regex | cidr
    value = "friendly-scanner"   # may hold ${sender_ip} and ${proxy_ip}
    action = "ban"         # accept | drop | reject | alarm | ban
    # optional: status = 403, reason = "Forbidden", ban_seconds, score (alarm weight),
    # methods = ["INVITE"], ignore_case = false, dry_run = false

Sources of the scanner rules: the lists in smartvox.co.uk "How to spot hacker INVITE
requests" (2016 and 2017 posts: From users, display names, User-Agents, and the warning
that FPBX/FreePBX 1.8 may be legitimate, hence alarm only); Kamailio's default
``kamailio.cfg`` (its ``friendly|scanner|sipcli|sipvicious|VaxSIPUserAgent|pplsip``
User-Agent drop); and captures of sipvicious 0.3.8 (svmap, svwar, svcrack) for the shape
rules. The shapes (a Call-ID of decimal digits only, a branch ``z9hG4bK-<digits>``, a
From-tag that is the hex of printable text, 0x01 and decimal digits, svcrack's constant
first tag) are weak alone: each is an alarm of score 1, and three together reach the
default ``score_threshold`` and drop the request. That still catches a sipvicious patched
to send another User-Agent, and no common UA produces three of them.

Known trade-off: ``100@``, ``trunk@``, ``user@``, ``test@`` and ``admin@`` at the proxy's
own IP are dropped as the brief asks; a deployment whose users really are ``100@<proxy IP>``
must list those rules in ``disable``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from ..config.problems import ConfigError
from .rules import MatchType, Rule, RuleAction, TableSettings, validate_rule

__all__ = ["DEFAULT_DENIED_PREFIXES", "DEFAULT_RULES_TOML", "default_rules", "parse_rules"]


# ----------------------------------------------------------------- rule files

_RULE_KEYS = frozenset(f.name for f in fields(Rule))
_SETTING_KEYS = frozenset(f.name for f in fields(TableSettings))


def parse_rules(text: str, *, source: str = "<rules>") -> tuple[list[Rule], TableSettings]:
    """Parse a rule file: ``[settings]`` and ``[[rule]]`` tables (format in ``defaults.py``).

    Raises :class:`~sipedge.config.problems.ConfigError` listing every problem found.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{source}: not valid TOML: {exc}"]) from None
    problems: list[str] = []
    unknown = sorted(set(data) - {"settings", "rule"})
    problems += [f"{source}: unknown table {k!r}; fix: use [settings] or [[rule]]" for k in unknown]
    settings = _settings(data.get("settings", {}), source, problems)
    rules: list[Rule] = []
    raw_rules = data.get("rule", [])
    if not isinstance(raw_rules, list):
        raw_rules = []
        problems.append(f"{source}: rule: must be [[rule]] tables")
    for i, raw in enumerate(raw_rules):
        rule = _rule(raw, f"{source}: rule[{i}]", problems)
        if rule is not None:
            rules.append(rule)
    seen: set[str] = set()
    for r in rules:
        if r.name in seen:
            problems.append(f"{source}: rule {r.name!r}: duplicate name; fix: rename one")
        seen.add(r.name)
    if problems:
        raise ConfigError(problems)
    return rules, settings


def _settings(raw: Any, where: str, problems: list[str]) -> TableSettings:
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: settings: must be a table")
        return TableSettings()
    bad = sorted(set(raw) - _SETTING_KEYS)
    problems += [
        f"{where}: settings.{k}: unknown key; fix: one of {sorted(_SETTING_KEYS)}" for k in bad
    ]
    try:
        return TableSettings(
            dry_run=_typed(raw, "dry_run", bool, False),
            ban_seconds=float(_typed(raw, "ban_seconds", (int, float), 3600.0)),
            score_threshold=_typed(raw, "score_threshold", int, 3),
            score_action=RuleAction(_typed(raw, "score_action", str, "drop")),
            check_trusted=_typed(raw, "check_trusted", bool, False),
            use_defaults=_typed(raw, "use_defaults", bool, True),
            disable=frozenset(_str_list(raw, "disable")),
        )
    except (TypeError, ValueError) as exc:
        problems.append(f"{where}: settings: {exc}")
        return TableSettings()


def _rule(raw: Any, where: str, problems: list[str]) -> Rule | None:
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: must be a table")
        return None
    bad = sorted(set(raw) - _RULE_KEYS)
    problems += [f"{where}.{k}: unknown key; fix: one of {sorted(_RULE_KEYS)}" for k in bad]
    try:
        rule = Rule(
            name=_typed(raw, "name", str, None),
            field=_typed(raw, "field", str, None),
            match=MatchType(_typed(raw, "match", str, "exact")),
            value=_typed(raw, "value", str, None),
            action=RuleAction(_typed(raw, "action", str, None)),
            status=_typed(raw, "status", int, 403),
            reason=_typed(raw, "reason", str, "Forbidden"),
            ban_seconds=_opt_float(raw, "ban_seconds"),
            score=_typed(raw, "score", int, 0),
            methods=frozenset(m.upper() for m in _str_list(raw, "methods")),
            ignore_case=_typed(raw, "ignore_case", bool, False),
            dry_run=_typed(raw, "dry_run", bool, False),
        )
        validate_rule(rule)
    except (TypeError, ValueError, re.error) as exc:
        problems.append(f"{where}: {exc}")
        return None
    return rule


def _typed(raw: Mapping[str, Any], key: str, kind: Any, default: Any) -> Any:
    if key not in raw:
        if default is None:
            raise ValueError(f"{key}: missing")
        return default
    value = raw[key]
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
        raise TypeError(f"{key}: expected {_kind_name(kind)}, got {value!r}")
    return value


def _kind_name(kind: Any) -> str:
    return "a number" if isinstance(kind, tuple) else kind.__name__


def _opt_float(raw: Mapping[str, Any], key: str) -> float | None:
    if key not in raw:
        return None
    return float(_typed(raw, key, (int, float), None))


def _str_list(raw: Mapping[str, Any], key: str) -> list[str]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{key}: expected a list of strings")
    return list(value)


# ----------------------------------------------------------------- shipped rules


def _rules(
    field: str, match: str, action: str, names: list[tuple[str, str]], extra: str = ""
) -> str:
    """TOML for several rules that differ only in name and value."""
    out = []
    for name, value in names:
        out.append(
            f'[[rule]]\nname = "{name}"\nfield = "{field}"\nmatch = "{match}"\n'
            f"value = '{value}'\naction = \"{action}\"\n{extra}"
        )
    return "\n".join(out)


DEFAULT_RULES_TOML = "\n".join(
    [
        "# sipedge shipped scanner rules (see sipedge/security/defaults.py for sources)",
        _rules(
            "user_agent",
            "exact",
            "ban",
            [
                ("ua-friendly-scanner", "friendly-scanner"),  # sipvicious
                ("ua-sipcli-1.8", "sipcli/v1.8"),
                ("ua-sipcli-2.2", "sipcli/v2.2"),
                ("ua-vaxsip-3.1", "VaxSIPUserAgent/3.1"),
            ],
        ),
        _rules(
            "user_agent",
            "exact",
            "drop",
            [
                ("ua-sip-call", "SIP Call"),
                ("ua-cisco-cucm8.6", "Cisco-CUCM8.6"),
                ("ua-simplesip-4.3", "SimpleSIP V4.3"),
            ],
        ),
        _rules(
            "user_agent",
            "prefix",
            "drop",
            [("ua-cisco-sipgateway", "Cisco-SIPGateway"), ("ua-z-3.14", "Z 3.14")],
        ),
        _rules(
            "user_agent",
            "regex",
            "drop",
            [("ua-kamailio-scanners", "friendly|scanner|sipcli|sipvicious|VaxSIPUserAgent|pplsip")],
            "ignore_case = true\n",
        ),
        _rules(
            "user_agent",
            "prefix",
            "alarm",
            [("ua-fpbx", "FPBX"), ("ua-freepbx-1.8", "FreePBX 1.8")],
            "score = 1\n",
        ),
        _rules("from", "exact", "ban", [("from-100-at-1.1.1.1", "100@1.1.1.1")]),
        _rules(
            "from",
            "exact",
            "drop",
            [
                ("from-100-at-proxy", "100@${proxy_ip}"),
                ("from-voipgw-at-sender", "voipgw@${sender_ip}"),
                ("from-8888888888-at-sender", "8888888888@${sender_ip}"),
                ("from-trunk-at-proxy", "trunk@${proxy_ip}"),
                ("from-user-at-proxy", "user@${proxy_ip}"),
                ("from-test-at-proxy", "test@${proxy_ip}"),
                ("from-admin-at-proxy", "admin@${proxy_ip}"),
                ("from-nm-at-nm", "nm@nm"),
            ],
        ),
        _rules("from_display", "exact", "ban", [("display-sipvicious", "sipvicious")]),
        _rules(
            "from_display",
            "exact",
            "drop",
            [
                ("display-caller", "Caller"),
                ("display-mayet", "MAYET"),
                ("display-simple-sip", "Simple SIP"),
                ("display-0123456789", "0123456789"),
            ],
        ),
        _rules(
            "call_id", "regex", "alarm", [("shape-callid-digits", "^[0-9]{6,30}$")], "score = 1\n"
        ),
        _rules(
            "via_branch",
            "regex",
            "alarm",
            [("shape-branch-digits", "^z9hG4bK-[0-9]+$")],
            "score = 1\n",
        ),
        _rules(
            "from_tag",
            "regex",
            "alarm",
            [("shape-fromtag-hex-01", "^(?:[2-7][0-9a-f])+01(?:3[0-9])+$")],
            "score = 1\n",
        ),
        _rules(
            "from_tag", "exact", "alarm", [("shape-fromtag-svcrack", "3206210844")], "score = 1\n"
        ),
        _rules(
            "header:Accept",
            "exact",
            "alarm",
            [("shape-accept-sdp-register", "application/sdp")],
            'score = 1\nmethods = ["REGISTER"]\n',
        ),
    ]
)


def default_rules() -> tuple[list[Rule], TableSettings]:
    """The shipped rules and table settings, parsed from :data:`DEFAULT_RULES_TOML`."""
    return parse_rules(DEFAULT_RULES_TOML, source="<shipped rules>")


#: Destinations denied by default (E.164 digits without "+"), longest prefix wins against
#: an allowed prefix. Compiled from general knowledge of ranges commonly abused for
#: International Revenue Share Fraud (IRSF) and premium-rate fraud: not an authoritative or
#: complete list. Operators add to it (``extra_denied_prefixes``) or make exceptions
#: (``allowed_prefixes``, per account or global).
DEFAULT_DENIED_PREFIXES: tuple[str, ...] = (
    # Global / satellite / non-geographic ITU codes: no fixed per-country price cap.
    "870",  # Inmarsat
    "881",  # Global Mobile Satellite System (Iridium, Globalstar, ...)
    "882",  # International networks
    "883",  # International networks
    "979",  # International Premium Rate Service (ITU)
    # Small Pacific administrations often used as revenue-share terminations.
    "674",  # Nauru
    "677",  # Solomon Islands
    "678",  # Vanuatu
    "682",  # Cook Islands
    "683",  # Niue
    "686",  # Kiribati
    "688",  # Tuvalu
    "690",  # Tokelau
    "691",  # Micronesia
    "692",  # Marshall Islands
    # Other frequently reported high-cost terminations.
    "53",  # Cuba
    "232",  # Sierra Leone
    "239",  # Sao Tome and Principe
    "245",  # Guinea-Bissau
    "246",  # Diego Garcia
    "247",  # Ascension
    "252",  # Somalia
    "269",  # Comoros
    "290",  # Saint Helena
    "500",  # Falkland Islands
    # NANP: Caribbean "one-ring" / 809-scam area codes dialled like national numbers,
    # and premium-rate 900/976.
    "1242",  # Bahamas
    "1246",  # Barbados
    "1264",  # Anguilla
    "1268",  # Antigua and Barbuda
    "1284",  # British Virgin Islands
    "1345",  # Cayman Islands
    "1441",  # Bermuda
    "1473",  # Grenada
    "1649",  # Turks and Caicos
    "1658",  # Jamaica (overlay)
    "1664",  # Montserrat
    "1721",  # Sint Maarten
    "1758",  # Saint Lucia
    "1767",  # Dominica
    "1784",  # Saint Vincent and the Grenadines
    "1809",  # Dominican Republic
    "1829",  # Dominican Republic
    "1849",  # Dominican Republic
    "1868",  # Trinidad and Tobago
    "1869",  # Saint Kitts and Nevis
    "1876",  # Jamaica
    "1900",  # NANP premium rate
    "1976",  # NANP premium rate (legacy)
    # National premium / personal-number ranges commonly abused.
    "4470",  # UK personal numbers (070)
    "449",  # UK premium rate (09)
    "49900",  # Germany premium rate (0900)
    "3389",  # France premium rate (089)
)
