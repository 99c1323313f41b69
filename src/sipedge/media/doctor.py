"""``sipedge doctor``: check each rtpengine node over its transport, small and large replies.

Theory of operation. ng replies to ``query`` and ``delete`` grow by about 1.2 KB per media
stream, so even a one-stream call's delete reply exceeds a 1500-byte MTU and travels over
UDP as IP fragments. A path that drops fragments (a firewall) loses every such reply; a
path that delays them (a shaper) makes each BYE wait. Pings stay small and are unaffected,
which is why such a node looks healthy until a call ends.

For each node :func:`probe_node` measures ``samples`` pings, then creates one throw-away
call with ``streams`` audio m-lines (the offer reply stays under the MTU), ``query``-s it
``samples`` times (a reply of ~1.2 KB per stream) and deletes it. Every command has the
short ``timeout``. :func:`classify` turns the measurements into a status and one plain
sentence; for a UDP node with trouble it names the TCP or WebSocket nodes of the same host
that answered large replies (from the config or ``--try``). Nodes are probed concurrently.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from sipedge.config.media import MediaConfig

from .bencode import encode
from .ng import NodeSpec, RelayRejected, RelayTimeout, parse_node_spec
from .rtpengine import RelayConfig, RelayUnreachable, RtpEngine

__all__ = [
    "DoctorReport",
    "DoctorSettings",
    "NodeReport",
    "Probe",
    "Status",
    "classify",
    "config_nodes",
    "probe_node",
    "probe_sdp",
    "run_doctor",
]

Status = Literal["ok", "slow", "lossy", "lost", "unusable"]
Role = Literal["node", "alternative"]
_FAIL = (RelayTimeout, RelayUnreachable)
_FROM_TAG = "sipedge-doctor"


@dataclass(frozen=True, slots=True)
class DoctorSettings:
    """``samples`` per measurement; ``timeout``: seconds per command (UDP resends included);
    ``streams``: m-lines of the throw-away call (about 1.2 KB of query reply each);
    ``slow_after``: seconds a large reply may take beyond a ping before it counts as slow."""

    samples: int = 3
    timeout: float = 1.0
    streams: int = 8
    slow_after: float = 0.1


@dataclass(frozen=True, slots=True)
class Probe:
    """Raw measurements of one node (seconds); ``error`` says why it could not be measured."""

    spec: NodeSpec
    small: tuple[float, ...] = ()
    small_failed: int = 0
    large: tuple[float, ...] = ()
    large_failed: int = 0
    large_bytes: int | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class NodeReport:
    """The verdict on one node: status, plain-words ``verdict`` and the advised nodes."""

    probe: Probe
    role: Role
    status: Status
    verdict: str
    advice: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """The node's spec without weight, e.g. ``udp:10.0.0.5:22222``."""
        return self.probe.spec.label

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dictionary (times in milliseconds)."""
        p = self.probe
        return {
            "node": self.label,
            "transport": p.spec.transport,
            "role": self.role,
            "status": self.status,
            "small_ms": _series(p.small, p.small_failed),
            "large_ms": _series(p.large, p.large_failed),
            "large_bytes": p.large_bytes,
            "error": p.error,
            "advice": list(self.advice),
            "verdict": self.verdict,
        }


@dataclass(frozen=True, slots=True)
class DoctorReport:
    """Reports for the checked nodes (``role="node"``) and the alternatives tried."""

    nodes: tuple[NodeReport, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """True when every checked node (not the alternatives) is ``ok``."""
        return all(r.status == "ok" for r in self.nodes if r.role == "node")

    @property
    def exit_code(self) -> int:
        """0 when :attr:`ok`, else 1 (a node unusable, or its large replies slow or lost)."""
        return 0 if self.ok else 1

    def lines(self) -> list[str]:
        """One verdict per node, then a summary line."""
        lines = [r.verdict for r in self.nodes]
        checked = [r for r in self.nodes if r.role == "node"]
        bad = sum(r.status != "ok" for r in checked)
        lines.append(f"sipedge doctor: {len(checked) - bad} of {len(checked)} node(s) OK")
        return lines

    def to_json(self) -> dict[str, object]:
        """``{"ok": bool, "nodes": [...]}`` (see :meth:`NodeReport.to_json`)."""
        return {"ok": self.ok, "nodes": [r.to_json() for r in self.nodes]}


# -- measuring ------------------------------------------------------------------------------


def probe_sdp(streams: int, host: str = "192.0.2.1") -> str:
    """An offer with ``streams`` audio m-lines and few attributes (reply under the MTU)."""
    media = "".join(f"m=audio {4000 + 2 * i} RTP/AVP 0\r\n" for i in range(streams))
    return f"v=0\r\no=- 1 1 IN IP4 {host}\r\ns=doctor\r\nt=0 0\r\nc=IN IP4 {host}\r\n{media}"


async def probe_node(spec: NodeSpec, settings: DoctorSettings) -> Probe:
    """Measure pings, then large replies, of the node ``spec`` (see the module text)."""
    config = RelayConfig(
        sets={"default": [spec.label]},
        timeout=settings.timeout,
        retransmit=settings.timeout / 2,
        connect_timeout=settings.timeout,
        disable_time=0.0,
        ping_interval=0.0,
        delete_retries=0,
    )
    async with RtpEngine(config) as relay:
        small, small_failed, error = await _pings(relay, spec.label, settings.samples)
        if error is not None:
            return Probe(spec, small, small_failed, error=error)
        return await _large(relay, Probe(spec, small, small_failed), settings)


async def _pings(
    relay: RtpEngine, label: str, samples: int
) -> tuple[tuple[float, ...], int, str | None]:
    times: list[float] = []
    failed = 0
    for _ in range(samples):
        start = time.perf_counter()
        try:
            await relay.ping(label)
        except RelayTimeout:
            failed += 1
            if not times:
                return (), failed, f"no reply to a ping within {relay.config.timeout:g} s"
            continue
        except RelayUnreachable as exc:
            return tuple(times), failed + 1, f"cannot connect ({_cause(exc, relay.config.timeout)})"
        except RelayRejected as exc:
            return tuple(times), failed, f"ping rejected: {exc.reason}"
        times.append(time.perf_counter() - start)
    return tuple(times), failed, None


async def _large(relay: RtpEngine, probe: Probe, settings: DoctorSettings) -> Probe:
    call_id = f"sipedge-doctor-{secrets.token_hex(6)}"
    try:
        await relay.offer(call_id, _FROM_TAG, probe_sdp(settings.streams))
    except (*_FAIL, RelayRejected) as exc:
        return replace(
            probe,
            error=f"cannot create a test call: offer failed ({_cause(exc, settings.timeout)})",
        )
    times: list[float] = []
    failed, size, error = 0, None, None
    try:
        for _ in range(settings.samples):
            start = time.perf_counter()
            try:
                reply = await relay.query(call_id, _FROM_TAG)
            except _FAIL:
                failed += 1
                if failed >= 2 and not times:
                    break  # lost is lost: spare the operator more timeouts
                continue
            except RelayRejected as exc:
                error = f"query rejected: {exc.reason}"
                break
            times.append(time.perf_counter() - start)
            size = len(encode(reply))  # the bencode body, without the cookie
    finally:
        await _delete(relay, call_id, settings.timeout if not failed else settings.timeout / 4)
    return replace(probe, large=tuple(times), large_failed=failed, large_bytes=size, error=error)


async def _delete(relay: RtpEngine, call_id: str, bound: float) -> None:
    """Best effort: the request reaches rtpengine even when its large reply is lost."""
    with contextlib.suppress(*_FAIL, RelayRejected, TimeoutError):
        async with asyncio.timeout(bound):
            await relay.delete(call_id, _FROM_TAG, delay=0, retry=False)


def _cause(exc: Exception, timeout: float) -> str:
    if isinstance(exc, RelayTimeout):
        return f"no reply within {timeout:g} s"
    if isinstance(exc, RelayRejected):
        return f"rejected: {exc.reason}"
    return re.sub(r"^rtpengine \S+: (cannot connect: )?", "", str(exc)) or type(exc).__name__


# -- judging ----------------------------------------------------------------------------------


def classify(
    probe: Probe, others: Sequence[Probe], settings: DoctorSettings, role: Role = "node"
) -> NodeReport:
    """The status and verdict of ``probe``; ``others`` are the other nodes measured, from
    which a UDP node in trouble gets its advice (TCP/WS nodes of the same host that are OK)."""
    status = _status(probe, settings)
    advice: tuple[str, ...] = ()
    if status != "ok" and probe.spec.transport == "udp":
        advice = tuple(o.spec.label for o in others if _good_alternative(probe, o, settings))
    text = f"{probe.spec.label}: {_problem(probe, status, others, settings)}"
    if advice or (probe.spec.transport == "udp" and status not in ("ok", "unusable")):
        text += " " + _advice_text(advice, others)
    return NodeReport(probe, role, status, text, advice)


def _status(probe: Probe, settings: DoctorSettings) -> Status:
    if probe.error is not None or not probe.small:
        return "unusable"
    if not probe.large:
        return "lost"
    if probe.large_failed or probe.small_failed:
        return "lossy"
    if _median(probe.large) > _median(probe.small) + settings.slow_after:
        return "slow"
    return "ok"


def _good_alternative(probe: Probe, other: Probe, settings: DoctorSettings) -> bool:
    same_host = other.spec.host == probe.spec.host
    return same_host and other.spec.transport != "udp" and _status(other, settings) == "ok"


def _problem(probe: Probe, status: Status, others: Sequence[Probe], s: DoctorSettings) -> str:
    if status == "unusable":
        return f"unusable: {probe.error or 'no reply'}."
    size, ping = _size_text(probe, others), _ms(_median(probe.small))
    if status == "lost":
        return (
            f"large replies ({size}) lost: {probe.large_failed} of {probe.large_failed} unanswered"
            f" within {s.timeout:g} s, while pings answer in {ping}: {_why_lost(probe)}"
        )
    if status == "lossy":
        return f"{_losses(probe, size)}, while pings answer in {ping}: {_why_lost(probe)}"
    large, top, n = _ms(_median(probe.large)), _ms(max(probe.large)), len(probe.large)
    if status == "ok":
        return f"OK: ping {ping}, large reply ({size}) {large} (median of {n}, max {top})."
    why = "the path or the relay is slow for large replies."
    if probe.spec.transport == "udp":
        why = "IP fragments are being delayed, or lost and resent, on the path."
    return f"large replies ({size}) slow: {large} median, {top} max, {ping} for a ping; {why}"


def _losses(probe: Probe, size: str) -> str:
    parts = []
    if probe.large_failed:
        sent = probe.large_failed + len(probe.large)
        parts.append(f"{probe.large_failed} of {sent} large replies ({size}) lost")
    if probe.small_failed:
        sent = probe.small_failed + len(probe.small)
        parts.append(f"{probe.small_failed} of {sent} pings lost")
    return "; ".join(parts)


def _why_lost(probe: Probe) -> str:
    if probe.small_failed:
        return "the path loses packets."
    if probe.spec.transport == "udp":
        return "IP fragments are being dropped on the path."
    return "check the relay's log and the path."


def _advice_text(advice: Sequence[str], others: Sequence[Probe]) -> str:
    if advice:
        by_label = {o.spec.label: o for o in others}
        parts = [f"{a} (large reply in {_ms(_median(by_label[a].large))})" for a in advice]
        return f"Use {' or '.join(parts)} instead."
    return (
        "Use ng over TCP or WebSocket instead: start rtpengine with --listen-tcp-ng"
        " (tcp:HOST:PORT) or --listen-http (ws://HOST:PORT/) and check it with --try,"
        " or carry UDP over TCP with `sipedge tunnel`."
    )


def _size_text(probe: Probe, others: Sequence[Probe]) -> str:
    if probe.large_bytes is not None:
        return f"{probe.large_bytes / 1000:.1f} KB"
    known = [o.large_bytes for o in others if o.large_bytes is not None]
    return f"~{max(known) / 1000:.1f} KB" if known else "several KB"


def _median(values: Sequence[float]) -> float:
    return statistics.median(values)


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.1f} ms" if ms >= 1 else f"{ms:.2f} ms"


def _series(values: Sequence[float], failed: int) -> dict[str, object]:
    ms = [v * 1000 for v in values]
    median = round(statistics.median(ms), 3) if ms else None
    return {"median": median, "max": round(max(ms), 3) if ms else None,
            "samples": len(ms), "lost": failed}  # fmt: skip


# -- running ----------------------------------------------------------------------------------


def config_nodes(media: MediaConfig) -> list[str]:
    """Every node of ``media.nodes`` and ``media.sets``, once each, without weights."""
    specs = [*media.nodes, *(spec for s in media.sets for spec in s.nodes)]
    return _unique(parse_node_spec(s).label for s in specs)


def _unique(labels: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(labels))


async def run_doctor(
    nodes: Sequence[str], alternatives: Sequence[str] = (), settings: DoctorSettings | None = None
) -> DoctorReport:
    """Probe ``nodes`` and ``alternatives`` (node specs) concurrently and judge each.

    Raises :class:`~sipedge.sip.errors.ParseError` for a malformed spec.
    """
    settings = settings or DoctorSettings()
    checked = _unique(parse_node_spec(n).label for n in nodes)
    extra = [a for a in _unique(parse_node_spec(a).label for a in alternatives) if a not in checked]
    specs = [parse_node_spec(label) for label in [*checked, *extra]]
    probes = await asyncio.gather(*(probe_node(spec, settings) for spec in specs))
    reports = []
    for i, probe in enumerate(probes):
        others = [p for j, p in enumerate(probes) if j != i]
        reports.append(
            classify(probe, others, settings, "node" if i < len(checked) else "alternative")
        )
    return DoctorReport(tuple(reports))
