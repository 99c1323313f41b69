"""Registrar and digest-auth interop plumbing: a sipedge with a registrar and no trusted
sources, subscribers made with ``sipedge user add``, SIPp REGISTER runs, raw REGISTERs over
UDP with a digest computed here, and a baresip user agent driven through ctrl_tcp.

Independent of sipedge's own SIP and digest code: the tests check it from outside.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interop_net import HOST
from interop_proxy import ProxyProcess, Topology
from interop_sipp import SippRun, Sipps, common_args

REALM = HOST  # auth.realm defaults to the first listener host
BARESIP_TEMPLATE = Path(__file__).parent / "baresip" / "config.in"
# baresip picks its RTP ports here: above the Linux ephemeral range and the test ports.
BARESIP_RTP = (61000, 61999)


def registrar_toml(port: int, state_dir: Path, algorithms: tuple[str, ...]) -> str:
    """sipedge with a registrar and digest auth, trusting no source (everyone local
    authenticates), short expiries allowed (min_expires 1)."""
    algs = ", ".join(f'"{a}"' for a in algorithms)
    return f"""\
[server]
listen = ["udp:{HOST}:{port}", "tcp:{HOST}:{port}"]
trusted = []
state_dir = "{state_dir}"
log_level = "info"

[auth]
algorithms = [{algs}]

[registrar]
min_expires = 1

[security]
# These tests send many wrong passwords from one address on purpose (the enumeration
# test); the auth-failure ban is tested in test_interop_security.py.
auth_max_failures = 1000
auth_user_max_failures = 1000
flood_density = 1000
# Issue 4's distinction (404 unknown, 480 no binding) for untrusted callers too.
hide_user_existence = false
"""


def add_user(db: Path, name: str, password: str, realm: str = REALM) -> None:
    """``sipedge user add`` NAME into the SQLite file ``db``; fails loudly on error."""
    cmd = [sys.executable, "-m", "sipedge", "user", "add", name]
    cmd += ["--realm", realm, "--password", password, "--db", str(db)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} -> {done.returncode}\n{done.stdout}{done.stderr}")


class RegistrarProxy(ProxyProcess):
    """sipedge from :func:`registrar_toml`, its state (location.db, users.db) in
    ``workdir/state``; ``users_db`` (made by :func:`add_user`) is copied there first."""

    def __init__(
        self,
        topo: Topology,
        workdir: Path,
        users_db: Path,
        algorithms: tuple[str, ...] = ("MD5", "SHA-256"),
    ) -> None:
        self.state_dir = workdir / "state"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(users_db, self.state_dir / "users.db")
        self.algorithms = algorithms
        super().__init__("sipedge", topo, workdir)

    def _prepare(self) -> list[str]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = self.workdir / "sipedge.toml"
        path.write_text(registrar_toml(self.topo.proxy, self.state_dir, self.algorithms))
        return [sys.executable, "-m", "sipedge", "run", "--config", str(path)]

    @property
    def registrar_uri(self) -> str:
        return f"sip:{HOST}:{self.topo.proxy}"

    def aor(self, user: str) -> str:
        """A Request-URI for a local user: our address with our port (is_domain needs it)."""
        return f"sip:{user}@{HOST}:{self.topo.proxy}"


def sipp_client(
    sipps: Sipps,
    scenario: str,
    proxy_port: int,
    ruri: str,
    *,
    port: int | None = None,
    keys: dict[str, str] | None = None,
    extra: tuple[str, ...] = (),
    timeout_s: float = 8,
    pause_ms: int = 0,
) -> SippRun:
    """Start one SIPp call of ``scenario`` towards the proxy, from ``port`` (else a fresh
    one); ``keys`` become ``-key NAME VALUE``. Each run logs into its own directory, so
    one port may be used by several runs in a row."""
    local = sipps.take_port() if port is None else port
    args = [f"{HOST}:{proxy_port}", *common_args(scenario, local, "udp", 1, timeout_s, pause_ms)]
    args += ["-key", "ruri", ruri]
    for name, value in (keys or {}).items():
        args += ["-key", name, value]
    name = f"{len(sipps.runs) + 1:02d}-{Path(scenario).stem}-{local}"
    run = SippRun(name, [*args, *extra], sipps.logdir / name, timeout_s + 5)
    sipps.runs.append(run)
    return run


def sipp_register(
    sipps: Sipps,
    proxy: RegistrarProxy,
    user: str,
    password: str,
    *,
    port: int | None = None,
    contact: str | None = None,
    expires: int = 60,
    scenario: str = "reg_auth.xml",
    keys: dict[str, str] | None = None,
) -> SippRun:
    """Run a REGISTER scenario for ``user`` from ``port``; the Contact defaults to
    ``sip:USER@127.0.0.1:PORT``, i.e. the sending port itself."""
    local = sipps.take_port() if port is None else port
    all_keys = {"contact": contact or f"sip:{user}@{HOST}:{local}", "expires": str(expires)}
    all_keys.update(keys or {})
    extra = ("-s", user, "-au", user, "-ap", password)
    uri = proxy.registrar_uri
    return sipp_client(
        sipps, scenario, proxy.topo.proxy, uri, port=local, keys=all_keys, extra=extra
    )


# --- raw REGISTER over UDP (RFC 3261 §10.2, digest per RFC 7616 §3.4 / RFC 2617 §3.2.2)


@dataclass(frozen=True)
class Reply:
    """One response: status, reason, headers in order (name as sent, value), RTT."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    rtt: float

    def values(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]


def parse_reply(data: bytes, rtt: float) -> Reply:
    """Parse a SIP response datagram (no folding is expected from sipedge)."""
    head = data.decode("utf-8", "replace").split("\r\n\r\n", 1)[0].split("\r\n")
    _, code, reason = [*head[0].split(" ", 2), ""][:3]
    headers = []
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return Reply(int(code), reason, headers, rtt)


def auth_params(value: str) -> list[tuple[str, str, bool]]:
    """The parameters of a Digest challenge/credentials: (name, value, was it quoted)."""
    _, _, rest = value.partition(" ")
    found = re.findall(r'\s*([A-Za-z0-9_-]+)=("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?', rest)
    return [(n.lower(), v.strip('"'), v.startswith('"')) for n, v in found]


def digest_md5(user: str, password: str, uri: str, nonce: str, nc: str, cnonce: str) -> str:
    """The qop=auth MD5 response to a REGISTER challenge (RFC 2617 §3.2.2.1)."""

    def h(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    ha1 = h(f"{user}:{REALM}:{password}")
    return h(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{h(f'REGISTER:{uri}')}")


@dataclass
class RawRegistrar:
    """REGISTERs from one UDP socket on 127.0.0.1 to the proxy on ``port``."""

    port: int
    sock: socket.socket = field(init=False)

    def __post_init__(self) -> None:
        self.last: tuple[bytes, str] = (b"", "")
        self.last_reply = b""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.settimeout(2.0)

    def close(self) -> None:
        self.sock.close()

    def register(self, user: str, call_id: str, cseq: int, authorization: str = "") -> Reply:
        """Send one REGISTER for ``user`` and wait for its final response."""
        local = self.sock.getsockname()[1]
        branch = "z9hG4bK-raw-" + uuid.uuid4().hex[:16]
        lines = [
            f"REGISTER sip:{HOST}:{self.port} SIP/2.0",
            f"Via: SIP/2.0/UDP {HOST}:{local};branch={branch};rport",
            "Max-Forwards: 70",
            f"From: <sip:{user}@{HOST}>;tag={call_id[:8]}",
            f"To: <sip:{user}@{HOST}>",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} REGISTER",
            f"Contact: <sip:{user}@{HOST}:{local}>",
            "Expires: 60",
        ]
        if authorization:
            lines.append(f"Authorization: {authorization}")
        data = ("\r\n".join([*lines, "Content-Length: 0"]) + "\r\n\r\n").encode()
        self.last = (data, branch)
        return self._exchange(data, branch)

    def _exchange(self, data: bytes, branch: str) -> Reply:
        start = time.perf_counter()
        self.sock.sendto(data, (HOST, self.port))
        while True:
            got = self.sock.recv(65535)
            reply = parse_reply(got, time.perf_counter() - start)
            if reply.status >= 200 and branch in got.decode("utf-8", "replace"):
                self.last_reply = got
                return reply

    def resend(self) -> bytes:
        """Send the last REGISTER again, byte for byte (a retransmission, RFC 3261
        §17.1.2.2), and return the final response datagram it gets."""
        self._exchange(*self.last)
        return self.last_reply

    def attempt(self, user: str, password: str) -> tuple[Reply, Reply]:
        """REGISTER, then answer its MD5 challenge with ``password``: both replies."""
        call_id = uuid.uuid4().hex
        first = self.register(user, call_id, 1)
        md5 = [v for v in first.values("WWW-Authenticate") if "algorithm=MD5" in v]
        if first.status != 401 or not md5:
            return first, first
        nonce = dict((n, v) for n, v, _ in auth_params(md5[0]))["nonce"]
        uri, cnonce, nc = f"sip:{HOST}:{self.port}", uuid.uuid4().hex[:16], "00000001"
        resp = digest_md5(user, password, uri, nonce, nc, cnonce)
        creds = (
            f'Digest username="{user}", realm="{REALM}", nonce="{nonce}", uri="{uri}", '
            f'response="{resp}", algorithm=MD5, qop=auth, nc={nc}, cnonce="{cnonce}"'
        )
        return first, self.register(user, call_id, 2, creds)


# --- baresip (Debian baresip-core 1.0) with its ctrl_tcp control socket


def baresip_path() -> str | None:
    """The baresip executable, or None when it is not installed."""
    return shutil.which("baresip")


class Baresip:
    """One baresip process with a config from ``baresip/config.in`` and one account.

    ``events`` collects every ctrl_tcp event (JSON objects with "event": true) in order.
    """

    def __init__(self, workdir: Path, sip_port: int, ctrl_port: int, account: str) -> None:
        self.workdir = workdir
        self.ctrl_port = ctrl_port
        self.events: list[dict[str, Any]] = []
        self._responses: dict[str, dict[str, Any]] = {}
        self._buf = b""
        self._sock: socket.socket | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        fields = {"SIP_PORT": sip_port, "CTRL_PORT": ctrl_port, "DIR": workdir}
        fields |= {"RTP_MIN": BARESIP_RTP[0], "RTP_MAX": BARESIP_RTP[1]}
        text = BARESIP_TEMPLATE.read_text()
        for name, value in fields.items():
            text = text.replace(f"@{name}@", str(value))
        (workdir / "config").write_text(text)
        (workdir / "accounts").write_text(account + "\n")
        (workdir / "contacts").write_text("")
        with wave.open(str(workdir / "silence8k.wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(b"\0\0" * 8000)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, lifetime: int = 30) -> None:
        """Start baresip (-t ``lifetime`` bounds it) and connect to ctrl_tcp."""
        exe = baresip_path() or "baresip"
        with (self.workdir / "output.txt").open("wb") as out:
            self.proc = subprocess.Popen(
                [exe, "-f", str(self.workdir), "-t", str(lifetime), "-s"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
            )
        deadline = time.monotonic() + 5
        while self._sock is None and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"baresip exited early\n{self.report()}")
            with contextlib.suppress(OSError):
                self._sock = socket.create_connection((HOST, self.ctrl_port), timeout=0.2)
            time.sleep(0.05)
        if self._sock is None:
            raise AssertionError(f"baresip ctrl_tcp not reachable\n{self.report()}")

    def command(self, command: str, timeout: float = 2.0) -> dict[str, Any]:
        """Send a ctrl_tcp command (a netstring of JSON) and return its response."""
        assert self._sock is not None
        token = uuid.uuid4().hex[:12]
        body = json.dumps({"command": command, "token": token}).encode()
        self._sock.sendall(str(len(body)).encode() + b":" + body + b",")
        deadline = time.monotonic() + timeout
        while token not in self._responses:
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                raise AssertionError(f"no answer to baresip command {command!r}")
        return self._responses.pop(token)

    def wait_registered(self, timeout: float) -> str:
        """Poll ``reginfo`` until the account shows OK (the REGISTER_OK event may fire
        before the control connection is accepted); returns the last reginfo text."""
        deadline = time.monotonic() + timeout
        while True:
            text = re.sub(r"\x1b\[[0-9;]*m", "", str(self.command("reginfo").get("data", "")))
            if re.search(r"\sOK\s", text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"baresip not registered after {timeout}s: {text!r}")
            time.sleep(0.1)

    def wait_event(self, kind: str, timeout: float) -> dict[str, Any]:
        """Read until an event of type ``kind`` has arrived (AssertionError at the bound)."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event.get("type") == kind:
                    return event
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                types = [e.get("type") for e in self.events]
                raise AssertionError(f"no baresip {kind} in {timeout}s; events {types}")

    def _read(self, timeout: float) -> bool:
        """Read more from ctrl_tcp and file complete netstrings as events or responses;
        False on EOF or timeout."""
        assert self._sock is not None
        self._sock.settimeout(timeout)
        try:
            chunk = self._sock.recv(65536)
        except TimeoutError:
            return False
        if not chunk:
            return False
        self._buf += chunk
        while b":" in self._buf:
            size, _, rest = self._buf.partition(b":")
            if len(rest) < int(size) + 1:
                break
            msg, self._buf = rest[: int(size)], rest[int(size) + 1 :]
            obj = json.loads(msg)
            if obj.get("event"):
                self.events.append(obj)
            elif obj.get("response"):
                self._responses[str(obj.get("token"))] = obj
        return True

    def stop(self) -> None:
        """SIGTERM (baresip unregisters and exits), then SIGKILL after a bound."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def output(self) -> str:
        try:
            return (self.workdir / "output.txt").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def report(self, tail: int = 3000) -> str:
        rc = None if self.proc is None else self.proc.poll()
        return f"--- baresip rc={rc} output (tail):\n{self.output()[-tail:]}"
