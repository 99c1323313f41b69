"""What the management API needs from a running sipedge: the :class:`Management` protocol.

The API (:mod:`sipedge.mgmt.api`) is written against this protocol, never against
:class:`~sipedge.app.App`, so that it can be tested with a fake. :class:`~sipedge.mgmt.
appfacade.AppFacade` implements it over the real services.
"""

from __future__ import annotations

from typing import Protocol

from .schemas import (
    Ban,
    BanRequest,
    Call,
    CapturedCall,
    CapturedMessage,
    Health,
    HistoryPoint,
    LogLevelName,
    Registration,
    RelayNode,
    ReloadItem,
    ReloadReport,
    RulesReport,
    Stats,
    Transports,
    Version,
)

__all__ = ["Invalid", "Management", "Unavailable"]


class Unavailable(Exception):
    """The feature an operation needs is off (no registrar, no security...), or the
    operation does not fit the current state (ending a call not yet answered): HTTP 409."""


class Invalid(Exception):
    """An argument the operation cannot use (e.g. not an IP address): HTTP 400."""


class Management(Protocol):
    """Every operation of the management API."""

    def health(self) -> Health:
        """Liveness."""
        ...

    def version(self) -> Version:
        """Version, runtime and uptime."""
        ...

    async def stats(self) -> Stats:
        """Counters and gauges of the whole instance."""
        ...

    def history(self, seconds: int) -> list[HistoryPoint]:
        """The last ``seconds`` one-second samples, oldest first."""
        ...

    async def metrics(self) -> str:
        """The Prometheus text exposition."""
        ...

    async def registrations(self, query: str, limit: int) -> list[Registration]:
        """Bindings of the AORs containing ``query`` (all when empty), at most ``limit``."""
        ...

    async def registration(self, aor: str) -> list[Registration]:
        """The bindings of one AOR (exact; normalised as the registrar does)."""
        ...

    async def remove_registration(self, aor: str, contact: str | None) -> int:
        """Remove one contact (or all) of an AOR; how many bindings went."""
        ...

    def calls(self) -> list[Call]:
        """Live dialogs, oldest first."""
        ...

    def recent_calls(self, limit: int) -> list[Call]:
        """Ended dialogs, most recent first."""
        ...

    def call(self, key: str) -> Call | None:
        """A live (else recently ended) dialog by key."""
        ...

    def end_call(self, key: str) -> bool:
        """End a live call with BYE both ways; False when there is no such call."""
        ...

    def bans(self) -> list[Ban]:
        """Active bans, soonest expiry first."""
        ...

    async def add_ban(self, request: BanRequest) -> Ban:
        """Ban an address (Invalid when it is not one)."""
        ...

    async def remove_ban(self, ip: str) -> bool:
        """Lift a ban; False when there was none."""
        ...

    def transports(self) -> Transports:
        """Listeners and stream connections."""
        ...

    def relay(self) -> list[RelayNode]:
        """rtpengine nodes and their health (empty without media relay)."""
        ...

    def rules(self) -> RulesReport:
        """The security rule table and its hit counts (the dry-run report)."""
        ...

    def reload_rules(self) -> ReloadItem:
        """Re-read the security rule file."""
        ...

    def reload(self) -> ReloadReport:
        """Reload what can change without a restart."""
        ...

    def log_level(self) -> LogLevelName:
        """The current log level."""
        ...

    def set_log_level(self, level: LogLevelName) -> None:
        """Change the log level."""
        ...

    def captured_calls(self, limit: int, query: str) -> list[CapturedCall]:
        """Call-IDs in the message capture, most recently active first."""
        ...

    def captured(self, call_id: str) -> list[CapturedMessage]:
        """The captured messages of one Call-ID, oldest first."""
        ...
