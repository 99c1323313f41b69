"""Security checks of the edge: scanner rules, flood and auth-failure bans, toll fraud.

:class:`Security` is the facade the proxy calls; the parts are usable on their own:
:class:`RuleEngine`/:class:`RuleTable` (the rule table), :class:`FloodDetector` and
:class:`AuthFailures` (rate detection), :class:`BanList`/:class:`MemoryBanList` (bans) and
:class:`FraudGuard` (IRSF limits).
"""

from .bans import Ban, BanList, MemoryBanList, ban_line, unban_line
from .defaults import DEFAULT_DENIED_PREFIXES, DEFAULT_RULES_TOML, default_rules, parse_rules
from .flood import AuthFailSettings, AuthFailures, FloodDetector, FloodSettings
from .fraud import AccountLimits, Dialled, FraudGuard, FraudSettings, classify
from .rules import (
    ATTRIBUTES,
    Action,
    MatchType,
    Rule,
    RuleAction,
    RuleTable,
    TableSettings,
    Verdict,
    validate_rule,
)
from .service import RuleEngine, Security, SecurityConfig

__all__ = [
    "ATTRIBUTES",
    "DEFAULT_DENIED_PREFIXES",
    "DEFAULT_RULES_TOML",
    "AccountLimits",
    "Action",
    "AuthFailSettings",
    "AuthFailures",
    "Ban",
    "BanList",
    "Dialled",
    "FloodDetector",
    "FloodSettings",
    "FraudGuard",
    "FraudSettings",
    "MatchType",
    "MemoryBanList",
    "Rule",
    "RuleAction",
    "RuleEngine",
    "RuleTable",
    "Security",
    "SecurityConfig",
    "TableSettings",
    "Verdict",
    "ban_line",
    "classify",
    "default_rules",
    "parse_rules",
    "unban_line",
    "validate_rule",
]
