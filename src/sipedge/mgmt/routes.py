"""The ``/api/v1`` operations, each a thin call into the :class:`Management` facade."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query

from . import schemas as s
from .facade import Management

_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": s.Problem}}
_CONFLICT: dict[int | str, dict[str, Any]] = {409: {"model": s.Problem}}
_INVALID: dict[int | str, dict[str, Any]] = {400: {"model": s.Problem}}

Limit = Annotated[int, Query(ge=1, le=10_000, description="At most this many items.")]


def _missing(what: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"no such {what}")


def build_router(m: Management, **kwargs: Any) -> APIRouter:
    """Every authenticated operation, under ``/api/v1`` (``kwargs`` go to APIRouter)."""
    r = APIRouter(prefix="/api/v1", **kwargs)
    _status_routes(r, m)
    _registration_routes(r, m)
    _call_routes(r, m)
    _security_routes(r, m)
    _runtime_routes(r, m)
    return r


def _status_routes(r: APIRouter, m: Management) -> None:
    @r.get("/version", tags=["status"])
    async def version() -> s.Version:
        """Version, Python, event loop, start time and uptime."""
        return m.version()

    @r.get("/stats", tags=["status"])
    async def stats() -> s.Stats:
        """Counters and gauges: calls, registrations, transactions, connections, traffic."""
        return await m.stats()

    @r.get("/stats/history", tags=["status"])
    async def history(
        seconds: Annotated[int, Query(ge=1, le=3600, description="How far back.")] = 300,
    ) -> list[s.HistoryPoint]:
        """One sample per second: calls active, calls started, event-loop lag."""
        return m.history(seconds)

    @r.get("/transports", tags=["status"])
    async def transports() -> s.Transports:
        """SIP listeners and open stream connections."""
        return m.transports()

    @r.get("/relay", tags=["status"])
    async def relay() -> list[s.RelayNode]:
        """rtpengine nodes, their health and round-trip time (empty without media relay)."""
        return m.relay()


def _registration_routes(r: APIRouter, m: Management) -> None:
    @r.get("/registrations", tags=["registrations"])
    async def registrations(
        limit: Limit = 1000,
        aor: Annotated[str, Query(max_length=256, description="AOR substring.")] = "",
    ) -> list[s.Registration]:
        """Registered contacts, optionally of the AORs that contain ``aor``."""
        return await m.registrations(aor, limit)

    @r.get("/registrations/{aor:path}", tags=["registrations"], responses=_NOT_FOUND | _CONFLICT)
    async def registration(aor: Annotated[str, Path(max_length=256)]) -> list[s.Registration]:
        """The contacts of one AOR (``sip:user@domain``, or ``user@domain``)."""
        found = await m.registration(aor)
        if not found:
            raise _missing("registration")
        return found

    @r.delete(
        "/registrations/{aor:path}",
        tags=["registrations"],
        responses=_NOT_FOUND | _CONFLICT | _INVALID,
    )
    async def remove_registration(
        aor: Annotated[str, Path(max_length=256)],
        contact: Annotated[str | None, Query(max_length=512, description="Only this one.")] = None,
    ) -> s.Removed:
        """Remove an AOR's contacts (or one contact): the device must register again."""
        removed = await m.remove_registration(aor, contact)
        if not removed:
            raise _missing("registration")
        return s.Removed(removed=removed)


def _call_routes(r: APIRouter, m: Management) -> None:
    @r.get("/calls", tags=["calls"])
    async def calls() -> list[s.Call]:
        """Active calls (dialogs being set up or answered), oldest first."""
        return m.calls()

    @r.get("/calls/recent", tags=["calls"])
    async def recent(limit: Limit = 100) -> list[s.Call]:
        """Calls that ended lately, most recent first."""
        return m.recent_calls(limit)

    @r.get("/calls/{key:path}", tags=["calls"], responses=_NOT_FOUND)
    async def call(key: Annotated[str, Path(max_length=512)]) -> s.Call:
        """One call by key (``call-id;from-tag``), active or recently ended."""
        found = m.call(key)
        if found is None:
            raise _missing("call")
        return found

    @r.delete("/calls/{key:path}", tags=["calls"], responses=_NOT_FOUND | _CONFLICT)
    async def end_call(key: Annotated[str, Path(max_length=512)]) -> s.Ended:
        """End an answered call: BYE to both sides (and its media relay released)."""
        if not m.end_call(key):
            raise _missing("call")
        return s.Ended(key=key, ended=True)

    @r.get("/capture", tags=["calls"])
    async def captured_calls(
        limit: Limit = 100,
        q: Annotated[str, Query(max_length=256, description="Call-ID or start-line text.")] = "",
    ) -> list[s.CapturedCall]:
        """Call-IDs with messages in the capture, most recently active first."""
        return m.captured_calls(limit, q)

    @r.get("/capture/{call_id:path}", tags=["calls"], responses=_NOT_FOUND)
    async def captured(call_id: Annotated[str, Path(max_length=512)]) -> list[s.CapturedMessage]:
        """The captured SIP messages of one Call-ID, oldest first (the ladder diagram)."""
        found = m.captured(call_id)
        if not found:
            raise _missing("captured call")
        return found


def _security_routes(r: APIRouter, m: Management) -> None:
    @r.get("/bans", tags=["security"])
    async def bans() -> list[s.Ban]:
        """Active bans, soonest expiry first."""
        return m.bans()

    @r.post("/bans", tags=["security"], status_code=201, responses=_CONFLICT | _INVALID)
    async def add_ban(request: s.BanRequest) -> s.Ban:
        """Ban a source address: its messages are dropped unread until the ban expires."""
        return await m.add_ban(request)

    @r.delete("/bans/{ip}", tags=["security"], responses=_NOT_FOUND | _CONFLICT | _INVALID)
    async def remove_ban(ip: Annotated[str, Path(max_length=64)]) -> s.Removed:
        """Lift a ban."""
        if not await m.remove_ban(ip):
            raise _missing("ban")
        return s.Removed(removed=1)

    @r.get("/security/rules", tags=["security"], responses=_CONFLICT)
    async def rules() -> s.RulesReport:
        """The scanner rule table with hits per rule: in dry run, what it would block."""
        return m.rules()

    @r.post("/security/rules/reload", tags=["security"])
    async def reload_rules() -> s.ReloadItem:
        """Re-read the rule file; a file with errors keeps the running rules."""
        return m.reload_rules()


def _runtime_routes(r: APIRouter, m: Management) -> None:
    @r.post("/reload", tags=["runtime"])
    async def reload() -> s.ReloadReport:
        """Reload what can change without a restart (TLS certificates, security rules);
        say what needs a restart. ``ok`` is false when a part failed (it keeps its old
        state)."""
        return m.reload()

    @r.get("/log-level", tags=["runtime"])
    async def log_level() -> s.LogLevel:
        """The least severe level written to the log."""
        return s.LogLevel(level=m.log_level())

    @r.put("/log-level", tags=["runtime"])
    async def set_log_level(body: s.LogLevel) -> s.LogLevel:
        """Change the log level until the next restart."""
        m.set_log_level(body.level)
        return s.LogLevel(level=m.log_level())
