"""The documents of the management API (pydantic models; they make its OpenAPI schema).

Times are Unix epoch seconds (floats); durations and ages are seconds.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

LogLevelName = Literal["debug", "info", "warning", "error"]


class Health(BaseModel):
    """Liveness: ``ok``, or ``draining`` while sipedge stops."""

    status: Literal["ok", "draining"]


class Version(BaseModel):
    """What is running."""

    version: str
    python: str
    event_loop: str
    started: float
    uptime: float


class Stats(BaseModel):
    """Counters and gauges of the whole instance (the dashboard's overview)."""

    uptime: float
    calls_active: int
    calls: dict[str, int] = Field(description="Dialog counters: started, confirmed, ended...")
    registrations: int = Field(description="Registered contacts (bindings).")
    aors: int = Field(description="Addresses of record with at least one binding.")
    transactions: int
    connections: dict[str, int] = Field(description="Open stream connections by transport.")
    bans: int = Field(description="Active bans.")
    requests_in: dict[str, int]
    requests_out: dict[str, int]
    responses_in: dict[str, int]
    responses_out: dict[str, int]
    drops: dict[str, int] = Field(description="Messages dropped or refused, by reason.")
    loop_lag_ms: float = Field(description="Event-loop lag (timer overshoot) of the last sample.")
    relay_nodes: int
    relay_nodes_up: int


class HistoryPoint(BaseModel):
    """One sample per second: calls active, calls started in that second, loop lag."""

    t: float
    calls_active: int
    calls_started: int
    loop_lag_ms: float


class Registration(BaseModel):
    """One binding of an AOR (RFC 3261 §10.3)."""

    aor: str
    contact: str
    expires_in: int
    q: float
    received: str = Field(description="Source ip:port of the REGISTER.")
    transport: str
    user_agent: str | None
    instance: str | None
    reg_id: int | None
    registered_at: float
    call_id: str


class Removed(BaseModel):
    """How many items an operation removed."""

    removed: int


class Leg(BaseModel):
    """One side of a call."""

    uri: str
    tag: str
    target: str
    transport: str | None
    remote: str | None


class Call(BaseModel):
    """One dialog (RFC 3261 §12) as the proxy tracks it."""

    key: str = Field(description='"call-id;from-tag", the call\'s identifier in this API.')
    call_id: str
    state: str
    caller: Leg
    callee: Leg
    request_uri: str
    account: str
    created: float
    confirmed_at: float | None
    ended_at: float | None
    duration: float
    relay_node: str | None
    end_reason: str


class Ended(BaseModel):
    """The call was found and BYE was sent both ways."""

    key: str
    ended: bool


class Ban(BaseModel):
    """An active ban of a source address."""

    ip: str
    reason: str
    expires_in: float


class BanRequest(BaseModel):
    """Ban ``ip`` for ``seconds``."""

    ip: str = Field(min_length=1, max_length=64, description="IPv4 or IPv6 address.")
    seconds: float = Field(3600.0, gt=0, le=10 * 365 * 86400)
    reason: str = Field("manual", min_length=1, max_length=64)


class Listener(BaseModel):
    """A bound SIP listener."""

    transport: str
    host: str
    port: int


class Connection(BaseModel):
    """An open stream connection (TCP, TLS, WS, WSS)."""

    id: int | None
    transport: str
    local: str
    remote: str
    inbound: bool
    age: float
    idle: float


class Transports(BaseModel):
    """Listeners and stream connections."""

    listeners: list[Listener]
    connections: list[Connection]


class RelayNode(BaseModel):
    """One rtpengine node and its health."""

    label: str
    weight: int
    available: bool
    pending: int
    commands: int
    timeouts: int
    failures: int
    retransmits: int
    rtt_ms: float | None = Field(description="Round trip of the last management ping.")


class Rule(BaseModel):
    """One scanner rule of the live table with its hit count."""

    name: str
    field: str
    match: str
    value: str
    action: str
    dry_run: bool
    hits: int


class RulesReport(BaseModel):
    """The live rule table and what it did (or, in dry run, would have done)."""

    file: str | None
    dry_run: bool
    rules: list[Rule]
    counters: dict[str, int]


class ReloadItem(BaseModel):
    """What happened to one reloadable part."""

    part: str
    status: Literal["reloaded", "unchanged", "failed", "live", "restart", "unavailable"]
    detail: str = ""


class ReloadReport(BaseModel):
    """Result of a configuration reload, part by part."""

    ok: bool
    items: list[ReloadItem]


class LogLevel(BaseModel):
    """The least severe level written to the log."""

    level: LogLevelName


class CapturedCall(BaseModel):
    """A Call-ID with messages in the capture."""

    call_id: str
    first: float
    last: float
    messages: int
    first_line: str


class CapturedMessage(BaseModel):
    """One captured SIP message."""

    seq: int
    time: float
    direction: Literal["in", "out"]
    transport: str
    src: str
    dst: str
    first_line: str
    bytes: int
    text: str


class Problem(BaseModel):
    """An error: what went wrong."""

    detail: str
