"""Security interop plumbing: sipedge with its security layer on, real sipvicious scanners
pinned to their own loopback addresses, SIPp traffic from other addresses, a relay that
strips ``qop`` from challenges, and /proc readings for the cost of dropping a banned source.

Addresses (all in 127.0.0.0/8, which these configs do NOT trust): sipedge on 127.0.0.1,
each attacker on its own 127.0.0.2x, the legitimate SIPp UAC and UAS on 127.0.0.30 (the
only trusted network), an untrusted "carrier" on 127.0.0.31, local callers on 127.0.0.40.

sipvicious 0.3.8 quirks handled here (tools are run unmodified otherwise):

* svwar and svcrack ignore ``-b`` and bind 0.0.0.0, so towards 127.0.0.1 they would all
  send from 127.0.0.1. A small launcher makes a bind to the wildcard address bind to the
  attacker's address instead (what ``-b`` promises).
* The tools wait 10 s on a silent server (a fixed socket timeout); the launcher caps socket
  timeouts at :data:`TOOL_TIMEOUT_CAP` so a banned scanner gives up quickly.
* They address ``sip:<target>`` without a port, so the configs list 127.0.0.1 in
  ``server.domains`` (any port is then "us"), as a deployment whose domain is its IP would.
* ``-R`` (mail a traceback to the author) and ``-A`` (look up msn.com) are never passed.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from interop_net import HOST, is_bound, proc_ipv4, proc_rows
from interop_proxy import ProxyProcess, Topology
from interop_sipp import SCENARIOS, SippRun, Sipps

LEGIT = "127.0.0.30"  # trusted: the legitimate UAC and the UAS it calls
CARRIER = "127.0.0.31"  # untrusted inbound caller reaching the UAS through a static route
CALLER = "127.0.0.40"  # untrusted: the proxy's own users calling out (digest auth)
TOOL_TIMEOUT_CAP = 2.0  # seconds a sipvicious tool waits on a silent socket

_BAN_RE = re.compile(r"sipedge BAN ip=(\S+) reason=(\S+) seconds=(\d+)")
_FRAUD_RE = re.compile(r"sipedge FRAUD account=(\S+) dest=(\S+) reason=(\S+)")

# Run one sipvicious tool: python -c LAUNCHER <pin ip> <timeout cap> <tool> <args...>
_LAUNCHER = """\
import importlib, socket, sys
pin, cap, tool = sys.argv[1], float(sys.argv[2]), sys.argv[3]
_bind, _settimeout = socket.socket.bind, socket.socket.settimeout
def bind(self, addr):
    if isinstance(addr, tuple) and addr[0] in ("", "0.0.0.0"):
        addr = (pin, *addr[1:])
    return _bind(self, addr)
def settimeout(self, value):
    return _settimeout(self, value if value is None else min(value, cap))
socket.socket.bind = bind
socket.socket.settimeout = settimeout
sys.argv = ["sipvicious_" + tool, *sys.argv[4:]]
importlib.import_module("sipvicious." + tool).main()
"""


def sipvicious_installed() -> bool:
    """Whether the sipvicious package is importable by this interpreter."""
    return importlib.util.find_spec("sipvicious") is not None


# --- sipedge with [security]


def security_toml(
    port: int, state_dir: Path, *, security: str = "", extra: str = "", trusted: str = LEGIT
) -> str:
    """sipedge with a registrar, digest auth (MD5 first, for SIPp and sipvicious) and the
    security layer; ``security`` goes into ``[security]``, ``extra`` after it (routes,
    ``[[security.accounts]]``)."""
    return f"""\
[server]
listen = ["udp:{HOST}:{port}", "tcp:{HOST}:{port}"]
# Scanners address sip:{HOST} without our port: make the address a domain of ours.
domains = ["{HOST}"]
trusted = ["{trusted}/32"]
state_dir = "{state_dir}"
log_level = "info"

[auth]
algorithms = ["MD5", "SHA-256"]

[security]
{security}
{extra}
"""


@dataclass(frozen=True)
class Ban:
    """One ``sipedge BAN`` log line."""

    ip: str
    reason: str
    seconds: int


class SecurityProxy(ProxyProcess):
    """sipedge from :func:`security_toml`; ``users_db`` is copied into its state dir."""

    def __init__(
        self, topo: Topology, workdir: Path, users_db: Path, security: str = "", extra: str = ""
    ) -> None:
        self.state_dir = workdir / "state"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "users.db").write_bytes(users_db.read_bytes())
        self.security = security
        self.extra = extra
        super().__init__("sipedge", topo, workdir)

    def _prepare(self) -> list[str]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = self.workdir / "sipedge.toml"
        text = security_toml(self.topo.proxy, self.state_dir, security=self.security)
        path.write_text(text + self.extra + "\n")
        return [sys.executable, "-m", "sipedge", "run", "--config", str(path)]

    def bans(self) -> list[Ban]:
        """Every BAN line logged so far, in order."""
        return [Ban(m[1], m[2], int(m[3])) for m in _BAN_RE.finditer(self.stderr_text())]

    def bans_of(self, ip: str) -> list[Ban]:
        return [b for b in self.bans() if b.ip == ip]

    def wait_ban(self, ip: str, timeout: float = 3.0) -> Ban:
        """The first BAN line for ``ip``; AssertionError if none appears in time."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.bans_of(ip)
            if found:
                return found[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"no BAN line for {ip} in {timeout}s\n{self.describe()}")
            time.sleep(0.05)

    def frauds(self) -> list[tuple[str, str, str]]:
        """(account, destination, reason) of every ``sipedge FRAUD`` line."""
        return [(m[1], m[2], m[3]) for m in _FRAUD_RE.finditer(self.stderr_text())]


# --- sipvicious


@dataclass(frozen=True)
class ToolRun:
    """A finished sipvicious run: exit code, everything it printed, wall time."""

    tool: str
    rc: int
    output: str
    seconds: float

    def count(self, text: str) -> int:
        return self.output.count(text)

    def describe(self, tail: int = 3000) -> str:
        return f"--- {self.tool} rc={self.rc} in {self.seconds:.1f}s:\n{self.output[-tail:]}"


def run_tool(tool: str, pin: str, args: list[str], workdir: Path, timeout: float = 30.0) -> ToolRun:
    """Run ``sipvicious_<tool>`` from address ``pin`` (with ``-x pin``); bounded."""
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-c", _LAUNCHER, pin, f"{TOOL_TIMEOUT_CAP:g}", tool, "-x", pin, *args]
    start = time.monotonic()
    try:
        done = subprocess.run(
            cmd,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{tool} still running after {timeout}s: {cmd}") from None
    output = done.stdout + done.stderr
    n = len(list(workdir.glob("*.log"))) + 1
    (workdir / f"{n:02d}-{tool}-{pin}.log").write_text(output)
    return ToolRun(tool, done.returncode, output, time.monotonic() - start)


class QopStripRelay:
    """A UDP relay between one client and the proxy that deletes ``qop="auth"`` from the
    challenges, so svcrack meets a challenge without qop (PEERS.md §2: it then still sends
    ``qop=auth`` but no ``nc``/``cnonce``). Both relay sockets use address ``ip``, so the
    proxy sees the attack coming from ``ip``."""

    def __init__(self, ip: str, front_port: int, proxy: tuple[str, int]) -> None:
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind((ip, front_port))
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.bind((ip, 0))
        self.proxy = proxy
        self.authorizations: list[str] = []  # Authorization values the client sent
        #: Distinct responses relayed back to the client (a retransmitted response, sent
        #: again when the client retransmits under load, is counted once).
        self.responses = 0
        self._seen: set[bytes] = set()
        self._client: tuple[str, int] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.front, self.back], [], [], 0.05)
            for sock in ready:
                data, addr = sock.recvfrom(65535)
                if sock is self.front:
                    self._client = addr
                    text = data.decode("utf-8", "replace")
                    self.authorizations += re.findall(r"(?im)^authorization:\s*(.*?)\r?$", text)
                    self.back.sendto(data, self.proxy)
                elif self._client is not None:
                    if data not in self._seen:
                        self._seen.add(data)
                        self.responses += 1
                    self.front.sendto(re.sub(rb',\s*qop="[^"]*"', b"", data), self._client)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.front.close()
        self.back.close()


# --- SIPp from other loopback addresses


def bound_at(ip: str, port: int) -> bool:
    """True when some process has bound UDP ``ip:port`` (without binding it ourselves)."""
    return is_bound(port, socket.SOCK_DGRAM, ip)


def start_uas_at(sipps: Sipps, ip: str, port: int, lifetime: float = 90) -> SippRun:
    """A SIPp UAS (uas_call.xml) on UDP ``ip:port`` answering any number of calls."""
    args = ["-sf", str(SCENARIOS / "uas_call.xml"), "-i", ip, "-p", str(port), "-t", "u1"]
    args += ["-m", "100000", "-nostdin", "-timeout", f"{lifetime:g}s"]
    run = SippRun(f"uas-{ip}-{port}", args, sipps.logdir / f"uas-{ip}-{port}", lifetime + 5)
    sipps.runs.append(run)
    deadline = time.monotonic() + 3
    while not bound_at(ip, port):
        if time.monotonic() > deadline or run.proc.poll() is not None:
            run.kill()
            raise AssertionError(f"SIPp UAS did not bind {ip}:{port}\n{run.report()}")
        time.sleep(0.02)
    return run


def sipp_from(
    sipps: Sipps,
    source: str,
    proxy_port: int,
    scenario: str,
    *,
    calls: int = 1,
    rate: float = 10,
    keys: dict[str, str] | None = None,
    extra: tuple[str, ...] = (),
    timeout_s: float = 10,
    pause_ms: int = 0,
    stats: bool = False,
) -> SippRun:
    """Start a SIPp UAC on ``source`` (a fresh port) towards the proxy; ``stats`` writes
    ``stats.csv`` (-trace_stat, one row a second and one at exit) into its log dir."""
    port = sipps.take_port()
    name = f"{len(sipps.runs) + 1:02d}-{Path(scenario).stem}-{source}-{port}"
    logdir = sipps.logdir / name
    args = [f"{HOST}:{proxy_port}", "-sf", str(SCENARIOS / scenario), "-i", source]
    args += ["-p", str(port), "-t", "u1", "-m", str(calls), "-r", f"{rate:g}"]
    args += ["-l", str(max(calls, 1)), "-d", str(pause_ms), "-nostdin"]
    args += ["-timeout", f"{timeout_s:g}s", "-timeout_error"]
    for key, value in (keys or {}).items():
        args += ["-key", key, value]
    if stats:
        args += ["-trace_stat", "-stf", str(logdir / "stats.csv"), "-fd", "1"]
    run = SippRun(name, [*args, *extra], logdir, timeout_s + 5)
    sipps.runs.append(run)
    return run


@dataclass(frozen=True)
class CallCounts:
    """Final counters of a SIPp UAC run."""

    created: int
    ok: int
    failed: int
    retrans: int

    @property
    def success(self) -> float:
        return self.ok / self.created if self.created else 0.0


def read_counts(stats_csv: Path) -> CallCounts:
    """The last row of a SIPp ``-trace_stat`` file (``;``-separated, cumulative ``(C)``)."""
    with stats_csv.open(encoding="latin-1", newline="") as f:
        rows = [r for r in csv.reader(f, delimiter=";") if r]
    if len(rows) < 2:
        return CallCounts(0, 0, 0, 0)
    col = {name: i for i, name in enumerate(rows[0])}
    last = rows[-1]

    def get(name: str) -> int:
        return int(last[col[name]])

    return CallCounts(
        get("OutgoingCall(C)"),
        get("SuccessfulCall(C)"),
        get("FailedCall(C)"),
        get("Retransmissions(C)"),
    )


@dataclass
class LegitLoad:
    """Calls at ``rate`` from ``source`` through the proxy to ``ruri`` (a SIPp UAS) while
    an attack runs; :meth:`finish` stops creating calls (SIGUSR1: SIPp lets the calls in
    progress end) and returns the counts."""

    sipps: Sipps
    proxy_port: int
    ruri: str
    source: str = LEGIT
    rate: float = 50
    run: SippRun = field(init=False)
    started: float = field(init=False)

    def __post_init__(self) -> None:
        self.run = sipp_from(
            self.sipps,
            self.source,
            self.proxy_port,
            "uac_call.xml",
            calls=5000,
            rate=self.rate,
            keys={"ruri": self.ruri},
            timeout_s=150,
            pause_ms=100,
            stats=True,
        )
        self.started = time.monotonic()

    def finish(self, min_seconds: float = 2.0) -> CallCounts:
        """Run at least ``min_seconds`` in all, then stop and read the counters."""
        time.sleep(max(0.0, self.started + min_seconds - time.monotonic()))
        if self.run.proc.poll() is None:
            self.run.proc.send_signal(signal.SIGUSR1)
        self.run.wait(timeout=15)
        return read_counts(self.run.logdir / "stats.csv")


# --- SIPp message logs with time stamps


_TRACE_HEAD = re.compile(
    r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\n"  # time stamp
    r"\w+ message (sent|received)[^\n]*\n\n([^\r\n]*)",  # direction, first line
    re.M,
)


def timed_trace(log: str) -> list[tuple[float, bool, str]]:
    """(time, sent, first line) of every message in a SIPp messages.log."""
    out = []
    for m in _TRACE_HEAD.finditer(log.replace("\r\n", "\n")):
        stamp = datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S.%f").timestamp()
        out.append((stamp, m[2] == "sent", m[3]))
    return out


# --- the cost of a banned source


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of ``pid`` so far, from /proc/<pid>/task/*/schedstat (ns)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def udp_socket(ip: str, port: int) -> tuple[int, int]:
    """(bytes queued for reading, datagrams dropped) of the UDP socket bound to ip:port,
    from /proc/net/udp."""
    want = f"{proc_ipv4(ip)}:{port:04X}"
    for cols in proc_rows("udp"):
        if cols[1] == want:
            rx_queue = int(cols[4].split(":")[1], 16)
            return rx_queue, int(cols[-1])
    raise AssertionError(f"no UDP socket bound to {ip}:{port} in /proc/net/udp")


def blast(source: str, dest: tuple[str, int], payload: bytes, count: int) -> float:
    """Send ``count`` copies of ``payload`` from ``source`` as fast as possible; seconds."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        start = time.perf_counter()
        for _ in range(count):
            with contextlib.suppress(BlockingIOError, ConnectionRefusedError):
                s.sendto(payload, dest)
        return time.perf_counter() - start


def scanner_options(source: str, port: int, dest: tuple[str, int]) -> bytes:
    """An OPTIONS shaped like svmap's (User-Agent friendly-scanner) from ``source:port``."""
    host, dport = dest
    lines = [
        f"OPTIONS sip:100@{host} SIP/2.0",
        f"Via: SIP/2.0/UDP {source}:{port};branch=z9hG4bK-1234567;rport",
        "Max-Forwards: 70",
        f'To: "sipvicious"<sip:100@{host}:{dport}>',
        f'From: "sipvicious"<sip:100@{host}:{dport}>;tag=6162636401313233',
        "User-Agent: friendly-scanner",
        "Call-ID: 123456789012345678901234",
        "CSeq: 1 OPTIONS",
        "Accept: application/sdp",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()
