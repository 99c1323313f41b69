"""sipedge, SIPp and baresip inside the namespaces of :mod:`interop_nat_net`.

sipedge and the provider's SIPp run in the "provider" namespace, the clients in "home",
behind the router's NAT. Every process runs under ``ip netns exec`` in a session of its
own (killed as a group), bounded in time; its output and SIP traces stay in the test's
directory. Raw SIP exchanges use sockets made inside a namespace (:func:`udp_exchange`).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from interop_nat_net import HOME_IP, PROVIDER_IP, in_netns
from interop_reg import Baresip, add_user
from interop_sipp import SCENARIOS, sipp_path

SIP_PORT = 5060  # sipedge, alone in its namespace
PROVIDER_UAS = 5080  # the provider's SIPp UAS
REALM = PROVIDER_IP  # auth.realm defaults to the first listener host
PASSWORDS = {"alice": "alice-nat-pw", "carol": "carol-nat-pw"}

# A caller that waits for the callee to hang up, with a Contact it can be reached at (the
# matrix scenario's .invalid Contact only works over a connection the caller opened).
UAC_WAIT_BYE = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="sipedge nat uac, callee hangs up">
  <send retrans="500">
    <![CDATA[
      INVITE [ruri] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "nat uac" <sip:uac@[local_ip]:[local_port]>;tag=[pid]c[call_number]
      To: <[ruri]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:uac@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=uac 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true">
    <action>
      <ereg regexp="sip:[^>]*" search_in="hdr" header="Contact:" check_it="true"
            assign_to="target"/>
    </action>
  </recv>
  <send>
    <![CDATA[
      ACK [$target] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: "nat uac" <sip:uac@[local_ip]:[local_port]>;tag=[pid]c[call_number]
      To: <[ruri]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <timewait milliseconds="200"/>
</scenario>
"""


def netns_exec(ns: str, cmd: list[str]) -> list[str]:
    return ["ip", "netns", "exec", ns, *cmd]


def make_users(db: Path) -> None:
    """users.db with the NAT test subscribers, realm = sipedge's provider address."""
    for name, password in PASSWORDS.items():
        add_user(db, name, password, realm=REALM)


def sipedge_toml(state_dir: Path, keepalive: str) -> str:
    """sipedge in the provider namespace: registrar and digest auth for the home users,
    the provider's own address trusted, NAT keepalives every second (``keepalive``:
    options, crlf or off), SDP fixing on, "pstn*" numbers routed to the provider's UAS."""
    return f"""\
[server]
listen = ["udp:{PROVIDER_IP}:{SIP_PORT}"]
trusted = ["{PROVIDER_IP}/32"]
state_dir = "{state_dir}"
log_level = "info"

[auth]
algorithms = ["MD5"]

[registrar]
min_expires = 1
persist = false

[nat]
keepalive = "{keepalive}"
keepalive_interval = 1.0
keepalive_max_lost = 3
fix_sdp = true

[security]
flood_density = 1000

[[proxy.routes]]
name = "pstn"
user_prefix = "pstn"
to = "sip:{PROVIDER_IP}:{PROVIDER_UAS}"
"""


def options(port: int, ip: str) -> bytes:
    tag = uuid.uuid4().hex[:10]
    return (
        f"OPTIONS sip:{PROVIDER_IP}:{SIP_PORT} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {ip}:{port};branch=z9hG4bK-{tag};rport\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:probe@{ip}>;tag={tag}\r\nTo: <sip:{PROVIDER_IP}>\r\n"
        f"Call-ID: {tag}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def udp_socket(ns: str, ip: str) -> socket.socket:
    """A UDP socket bound to ``ip`` in namespace ``ns``."""

    def make() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((ip, 0))
        return s

    return in_netns(ns, make)


def udp_exchange(ns: str, ip: str, build: object, wait: float = 1.0) -> bytes | None:
    """Send ``build(local_port)`` (bytes) from a fresh socket in ``ns`` to sipedge and
    return the first final response (or None)."""
    with udp_socket(ns, ip) as s:
        s.settimeout(wait)
        data = build(s.getsockname()[1])
        s.sendto(data, (PROVIDER_IP, SIP_PORT))
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                got = s.recv(65535)
            except OSError:
                return None
            if not re.match(rb"SIP/2\.0 1\d\d ", got):
                return got
    return None


class NsSipedge:
    """sipedge as a foreground process in the provider namespace."""

    def __init__(self, ns: str, workdir: Path, users_db: Path, keepalive: str) -> None:
        self.ns = ns
        self.workdir = workdir
        state = workdir / "state"
        state.mkdir(parents=True, exist_ok=True)
        (state / "users.db").write_bytes(users_db.read_bytes())
        config = workdir / "sipedge.toml"
        config.write_text(sipedge_toml(state, keepalive))
        self.command = netns_exec(
            ns, [sys.executable, "-m", "sipedge", "run", "--config", str(config)]
        )
        self.log = workdir / "sipedge.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, ready_timeout: float = 8.0) -> None:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
            )
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"sipedge exited early\n{self.describe()}")
            got = udp_exchange(self.ns, PROVIDER_IP, lambda p: options(p, PROVIDER_IP), 0.2)
            if got is not None:
                return
        self.stop()
        raise AssertionError(f"sipedge not ready in {ready_timeout}s\n{self.describe()}")

    def stop(self) -> None:
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
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def describe(self, tail: int = 4000) -> str:
        rc = None if self.proc is None else self.proc.poll()
        return f"--- sipedge rc={rc} output (tail):\n{self.output()[-tail:]}"


class NsSipp:
    """One bounded SIPp process in a namespace, with its logs (like interop_sipp.SippRun)."""

    def __init__(
        self,
        ns: str,
        name: str,
        logdir: Path,
        scenario: str,
        local: tuple[str, int],
        *,
        remote: str | None = None,
        keys: dict[str, str] | None = None,
        extra: tuple[str, ...] = (),
        timeout_s: float = 8,
        pause_ms: int = 0,
        calls: int = 1,
    ) -> None:
        """``calls`` 0: no call limit (a UAS that also answers keepalives with -aa: SIPp
        counts each auto-answered OPTIONS as a call); the test then kills it."""
        self.name = name
        self.logdir = logdir / name
        self.logdir.mkdir(parents=True, exist_ok=True)
        path = Path(scenario)
        if not path.is_absolute():
            path = SCENARIOS / scenario
        args = [remote] if remote else []
        args += ["-sf", str(path), "-i", local[0], "-p", str(local[1]), "-t", "u1"]
        if calls:
            args += ["-m", str(calls)]
        args += ["-d", str(pause_ms), "-nostdin", "-timeout", f"{timeout_s:g}s", "-timeout_error"]
        for key, value in (keys or {}).items():
            args += ["-key", key, value]
        d = self.logdir
        logs = ["-trace_err", "-error_file", str(d / "errors.log")]
        logs += ["-trace_msg", "-message_file", str(d / "messages.log")]
        self.args = netns_exec(ns, [sipp_path() or "sipp", *args, *extra, *logs])
        self.outer_timeout = timeout_s + 5
        with (d / "output.txt").open("wb") as out:
            self.proc = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=d,
                start_new_session=True,
            )

    def wait(self, timeout: float | None = None) -> int:
        try:
            return self.proc.wait(timeout=self.outer_timeout if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.wait(timeout=5)

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def read(self, name: str) -> str:
        try:
            return (self.logdir / name).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def report(self) -> str:
        parts = [f"--- sipp {self.name}: rc={self.proc.poll()} {' '.join(self.args)}"]
        for log, tail in (("output.txt", 800), ("errors.log", 3000), ("messages.log", 6000)):
            text = self.read(log)
            if text.strip():
                parts.append(f"--- sipp {self.name} {log} (tail):\n{text[-tail:]}")
        return "\n".join(parts)


class NsBaresip(Baresip):
    """baresip in the home namespace: SIP and media on the home address, its control
    socket on the namespace's own loopback (reached through :func:`in_netns`)."""

    def __init__(self, ns: str, workdir: Path, sip_port: int, account: str) -> None:
        super().__init__(workdir, sip_port, 4444, account)
        self.ns = ns
        config = workdir / "config"
        text = config.read_text()
        text = re.sub(r"(?m)^sip_listen\s+\S+", f"sip_listen      {HOME_IP}:{sip_port}", text)
        text = re.sub(r"(?m)^net_interface\s+\S+", f"net_interface   {HOME_IP}", text)
        config.write_text(text)

    def start(self, lifetime: int = 30) -> None:
        exe = "baresip"
        with (self.workdir / "output.txt").open("wb") as out:
            self.proc = subprocess.Popen(
                netns_exec(self.ns, [exe, "-f", str(self.workdir), "-t", str(lifetime), "-s"]),
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
                self._sock = in_netns(
                    self.ns, lambda: socket.create_connection(("127.0.0.1", 4444), timeout=0.2)
                )
            time.sleep(0.05)
        if self._sock is None:
            raise AssertionError(f"baresip ctrl_tcp not reachable\n{self.report()}")
