"""A fake :class:`~sipedge.mgmt.facade.Management` with a little state, for API tests."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from sipedge.mgmt import schemas as s
from sipedge.mgmt.facade import Invalid, Unavailable

NOW = 1_700_000_000.0
LEG = s.Leg(uri="<sip:alice@example.com>;tag=a1", tag="a1", target="", transport="udp", remote=None)
CALL = s.Call(
    key="call-1@host;a1",
    call_id="call-1@host",
    state="confirmed",
    caller=LEG,
    callee=LEG.model_copy(update={"tag": "b1"}),
    request_uri="sip:bob@example.com",
    account="alice",
    created=NOW,
    confirmed_at=NOW + 1,
    ended_at=None,
    duration=5.0,
    relay_node=None,
    end_reason="",
)
EARLY = CALL.model_copy(
    update={"key": "call-2@host;a2", "call_id": "call-2@host", "state": "early"}
)
REG = s.Registration(
    aor="sip:alice@example.com",
    contact="sip:alice@192.0.2.1:5060",
    expires_in=300,
    q=1.0,
    received="192.0.2.1:5060",
    transport="udp",
    user_agent="phone",
    instance=None,
    reg_id=None,
    registered_at=NOW,
    call_id="reg-1",
)
MESSAGES = [
    s.CapturedMessage(
        seq=i + 1,
        time=NOW + i,
        direction="in" if i % 2 == 0 else "out",
        transport="udp",
        src="192.0.2.1:5060",
        dst="127.0.0.1:5060",
        first_line=line,
        bytes=len(line),
        text=line + "\r\n\r\n",
    )
    for i, line in enumerate(["INVITE sip:bob@example.com SIP/2.0", "SIP/2.0 200 OK"])
]


class FakeFacade:
    """Answers from fixed data; mutations are recorded in ``log``."""

    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []
        self.level: s.LogLevelName = "warning"
        self.banned: dict[str, s.Ban] = {}
        self.security = True
        self.regs = [REG]

    def health(self) -> s.Health:
        return s.Health(status="ok")

    def version(self) -> s.Version:
        return s.Version(
            version="0.1.0", python="3.11", event_loop="asyncio", started=NOW, uptime=1
        )

    async def stats(self) -> s.Stats:
        return s.Stats(
            uptime=1.0,
            calls_active=2,
            calls={"started": 3},
            registrations=1,
            aors=1,
            transactions=0,
            connections={"tcp": 1},
            bans=len(self.banned),
            requests_in={"INVITE": 1},
            requests_out={},
            responses_in={},
            responses_out={"200": 1},
            drops={},
            loop_lag_ms=0.5,
            relay_nodes=0,
            relay_nodes_up=0,
        )

    def history(self, seconds: int) -> list[s.HistoryPoint]:
        points = [
            s.HistoryPoint(t=NOW + i, calls_active=1, calls_started=i % 2, loop_lag_ms=0.1)
            for i in range(10)
        ]
        return points[-seconds:]

    async def metrics(self) -> str:
        return "# HELP sipedge_x X.\n# TYPE sipedge_x gauge\nsipedge_x 1\n"

    async def registrations(self, query: str, limit: int) -> list[s.Registration]:
        return [r for r in self.regs if query in r.aor][:limit]

    async def registration(self, aor: str) -> list[s.Registration]:
        if "@" not in aor:
            raise Invalid("not an address of record")
        return [r for r in self.regs if r.aor in (aor, f"sip:{aor}")]

    async def remove_registration(self, aor: str, contact: str | None) -> int:
        self.log.append(("remove_registration", (aor, contact)))
        before = len(self.regs)
        self.regs = [r for r in self.regs if not (r.aor == aor and contact in (None, r.contact))]
        return before - len(self.regs)

    def calls(self) -> list[s.Call]:
        return [CALL, EARLY]

    def recent_calls(self, limit: int) -> list[s.Call]:
        return [CALL.model_copy(update={"state": "terminated", "end_reason": "bye"})][:limit]

    def call(self, key: str) -> s.Call | None:
        return next((c for c in (CALL, EARLY) if c.key == key), None)

    def end_call(self, key: str) -> bool:
        self.log.append(("end_call", key))
        if key == EARLY.key:
            raise Unavailable("the call is early: only answered calls can be ended")
        return key == CALL.key

    def bans(self) -> list[s.Ban]:
        return list(self.banned.values())

    async def add_ban(self, request: s.BanRequest) -> s.Ban:
        if not self.security:
            raise Unavailable("security is disabled")
        if not request.ip[0].isdigit():
            raise Invalid(f"{request.ip!r} is not an IP address")
        ban = s.Ban(ip=request.ip, reason=request.reason, expires_in=request.seconds)
        self.banned[request.ip] = ban
        return ban

    async def remove_ban(self, ip: str) -> bool:
        return self.banned.pop(ip, None) is not None

    def transports(self) -> s.Transports:
        return s.Transports(
            listeners=[s.Listener(transport="udp", host="127.0.0.1", port=5060)], connections=[]
        )

    def relay(self) -> list[s.RelayNode]:
        return []

    def rules(self) -> s.RulesReport:
        if not self.security:
            raise Unavailable("security is disabled")
        rule = s.Rule(
            name="ua-x",
            field="user_agent",
            match="exact",
            value="x",
            action="ban",
            dry_run=True,
            hits=2,
        )
        return s.RulesReport(file=None, dry_run=True, rules=[rule], counters={"rules.dry_run": 2})

    def reload_rules(self) -> s.ReloadItem:
        self.log.append(("reload_rules", None))
        return s.ReloadItem(part="security rules", status="unchanged")

    def reload(self) -> s.ReloadReport:
        self.log.append(("reload", None))
        return s.ReloadReport(ok=True, items=[self.reload_rules()])

    def log_level(self) -> s.LogLevelName:
        return self.level

    def set_log_level(self, level: s.LogLevelName) -> None:
        self.level = level

    def captured_calls(self, limit: int, query: str) -> list[s.CapturedCall]:
        one = s.CapturedCall(
            call_id="call-1@host",
            first=NOW,
            last=NOW + 1,
            messages=2,
            first_line=MESSAGES[0].first_line,
        )
        return [one][:limit] if query in one.call_id else []

    def captured(self, call_id: str) -> list[s.CapturedMessage]:
        return MESSAGES if call_id == "call-1@host" else []


class SyncClient:
    """httpx over the ASGI app (no socket), called synchronously from a test."""

    def __init__(self, app: Any, base_url: str, headers: dict[str, str] | None = None) -> None:
        self._runner = asyncio.Runner()
        transport = httpx.ASGITransport(app=app)
        self._client = httpx.AsyncClient(transport=transport, base_url=base_url, headers=headers)

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self._runner.run(self._client.request(method, path, **kw))

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("PUT", path, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("DELETE", path, **kw)

    def close(self) -> None:
        self._runner.run(self._client.aclose())
        self._runner.close()
