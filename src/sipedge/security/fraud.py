"""Toll-fraud limits (IRSF): denied destination prefixes, international calling per
account, concurrent calls and calls per minute.

A destination (a number, or a SIP/tel URI whose user part is one) is put in E.164 form:
an international prefix (``+``, ``00``; add ``011`` in NANP) is removed, and a national
number (starting with ``trunk_prefix``) gets ``home_country_code`` in place of that prefix.
The longest matching prefix among the denied and allowed lists decides (allowed wins a
tie); the shipped denied list is :data:`~sipedge.security.defaults.DEFAULT_DENIED_PREFIXES`.
A call is international when dialled with an international prefix to another country
code; it needs ``international=True`` in the account's limits. Names, extensions and
feature codes (``*72``) are not numbers: only the per-account counts apply to them.

Concurrent calls are counted from explicit :meth:`FraudGuard.call_started` and
:meth:`FraudGuard.call_ended` (dialog tracking will call them later).
"""

from __future__ import annotations

import logging
import re
from collections import Counter, OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

from .bans import log_token
from .defaults import DEFAULT_DENIED_PREFIXES
from .rules import Action, Verdict

__all__ = ["AccountLimits", "Dialled", "FraudGuard", "FraudSettings", "classify"]

log = logging.getLogger("sipedge.security")

_SEPARATORS = str.maketrans("", "", " -.()/")
_NUMBER_RE = re.compile(r"\+?[0-9]{1,32}")


@dataclass(frozen=True, slots=True)
class AccountLimits:
    """Per-account limits; None means unlimited."""

    international: bool = False
    max_concurrent: int | None = 10
    max_calls_per_minute: int | None = 20
    allowed_prefixes: tuple[str, ...] = ()  # exceptions to the denied list for this account


@dataclass(frozen=True, slots=True)
class FraudSettings:
    """Destination rules and account limits (``accounts`` overrides ``default_limits``)."""

    denied_prefixes: tuple[str, ...] = DEFAULT_DENIED_PREFIXES
    extra_denied_prefixes: tuple[str, ...] = ()
    allowed_prefixes: tuple[str, ...] = ()
    international_prefixes: tuple[str, ...] = ("+", "00")
    home_country_code: str = ""
    trunk_prefix: str = "0"
    default_limits: AccountLimits = AccountLimits()
    accounts: Mapping[str, AccountLimits] = field(default_factory=dict)
    max_accounts: int = 100_000  # per-minute windows kept (LRU)


@dataclass(frozen=True, slots=True)
class Dialled:
    """A destination read as a number: ``e164`` digits (None for a local number)."""

    e164: str | None
    international: bool


def classify(destination: str, settings: FraudSettings) -> Dialled | None:
    """Read ``destination`` as a number; None when it is not one (a name, ``*72``...)."""
    text = destination
    if ":" in text:
        text = text.split(":", 1)[1]
    text = unquote(text.split("@", 1)[0].split(";", 1)[0]).translate(_SEPARATORS)
    if _NUMBER_RE.fullmatch(text) is None:
        return None
    home = settings.home_country_code
    for prefix in sorted(settings.international_prefixes, key=len, reverse=True):
        if prefix and text.startswith(prefix):
            e164 = text[len(prefix) :]
            return Dialled(e164, not (home and e164.startswith(home)))
    if "+" in text:
        return Dialled(text.lstrip("+"), True)
    trunk = settings.trunk_prefix
    if home and trunk and text.startswith(trunk):
        return Dialled(home + text[len(trunk) :], False)
    return Dialled(None, False)


class FraudGuard:
    """Checks calls against the destination lists and each account's limits.

    ``counters``: ``fraud.accepted``, ``fraud.denied_prefix``, ``fraud.international``,
    ``fraud.concurrent``, ``fraud.rate``.
    """

    def __init__(self, settings: FraudSettings | None = None) -> None:
        self.settings = s = settings or FraudSettings()
        self._denied = frozenset(s.denied_prefixes) | frozenset(s.extra_denied_prefixes)
        self._allowed = frozenset(s.allowed_prefixes)
        self._calls: dict[str, str] = {}  # call-id -> account
        self._active: Counter[str] = Counter()  # account -> calls in progress
        self._rates: OrderedDict[str, deque[float]] = OrderedDict()
        self.counters: Counter[str] = Counter()

    def limits(self, account: str) -> AccountLimits:
        """The limits that apply to ``account``."""
        return self.settings.accounts.get(account, self.settings.default_limits)

    def active(self, account: str) -> int:
        """Calls of ``account`` in progress."""
        return self._active[account]

    def check_call(self, account: str, destination: str, now: float) -> Verdict:
        """Decide whether ``account`` may call ``destination`` now (403 with a reason if not).

        An accepted call counts towards the per-minute limit; call :meth:`call_started`
        when it is forwarded, for the concurrent limit.
        """
        lim = self.limits(account)
        dialled = classify(destination, self.settings)
        if dialled is not None and dialled.e164 is not None:
            prefix = self._denied_prefix(dialled.e164, lim)
            if prefix is not None:
                return self._refuse("denied_prefix", account, destination, f"prefix {prefix}")
            if dialled.international and not lim.international:
                return self._refuse("international", account, destination, "not enabled")
        if lim.max_concurrent is not None and self._active[account] >= lim.max_concurrent:
            return self._refuse("concurrent", account, destination, f"{lim.max_concurrent} calls")
        if lim.max_calls_per_minute is not None and not self._rate_ok(account, lim, now):
            detail = f"{lim.max_calls_per_minute} calls/min"
            return self._refuse("rate", account, destination, detail)
        self.counters["fraud.accepted"] += 1
        return Verdict(Action.ACCEPT)

    def _denied_prefix(self, e164: str, lim: AccountLimits) -> str | None:
        """The longest listed prefix of ``e164`` if it is a denied one (allowed wins ties)."""
        allowed = self._allowed.union(lim.allowed_prefixes) if lim.allowed_prefixes else None
        for n in range(min(len(e164), 16), 0, -1):
            p = e164[:n]
            if p in self._allowed or (allowed is not None and p in allowed):
                return None
            if p in self._denied:
                return p
        return None

    def _rate_ok(self, account: str, lim: AccountLimits, now: float) -> bool:
        assert lim.max_calls_per_minute is not None
        times = self._rates.get(account)
        if times is None or times.maxlen != lim.max_calls_per_minute:
            times = self._rates[account] = deque(maxlen=lim.max_calls_per_minute)
            if len(self._rates) > self.settings.max_accounts:
                self._rates.popitem(last=False)
        self._rates.move_to_end(account)
        if len(times) == times.maxlen and now - times[0] < 60.0:
            return False
        times.append(now)
        return True

    def _refuse(self, what: str, account: str, destination: str, detail: str) -> Verdict:
        name = f"fraud.{what}"
        self.counters[name] += 1
        log.warning(
            "sipedge FRAUD account=%s dest=%s reason=%s detail=%s",
            log_token(account),
            log_token(destination),
            what,
            log_token(detail),
        )
        return Verdict(Action.REJECT, 403, "Forbidden", name, f"{what}: {detail}", alarms=(name,))

    def call_started(self, account: str, call_id: str) -> None:
        """A call of ``account`` was forwarded (idempotent per Call-ID)."""
        if call_id in self._calls:
            return
        self._calls[call_id] = account
        self._active[account] += 1

    def call_ended(self, call_id: str) -> None:
        """The call ``call_id`` ended or failed (unknown Call-IDs are ignored)."""
        account = self._calls.pop(call_id, None)
        if account is None:
            return
        self._active[account] -= 1
        if self._active[account] <= 0:
            del self._active[account]
