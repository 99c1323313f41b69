"""Two active sipedge nodes sharing one Redis, behind DNS SRV, on loopback addresses.

Topology (nothing leaves the machine; no root needed)::

    node A  127.0.0.2:PORT udp+tcp   ha.mode = "active-active", ha.node = "node-a"
    node B  127.0.0.3:PORT udp+tcp   the same, ha.node = "node-b"
    Redis   127.0.0.1:R              (redis-server, no persistence)
    DNS     127.0.0.1:D              _sip._tcp/_sip._udp.sipedge.test SRV -> both nodes
    SIPp    127.0.0.1                UASes registered over TCP, UACs over UDP

Two loopback addresses stand for two hosts: each node advertises its own address in the
Path entries it stores (:mod:`sipedge.ha.paths`), so a node can tell its own entries
from the other node's as it would on a real network. The SIP scenarios are here too: a
UAS that registers over its TCP connection and then answers a call on it (the INVITE
carries the REGISTER's Call-ID, both SIPps being given it with ``-cid_str``, because SIPp
matches incoming requests to its calls by Call-ID), and the UAC calling it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from interop_dns import DnsServer, Zone
from interop_net import HOST

from sipedge.ha.probe import probe

DOMAIN = "sipedge.test"
NODES = {"node-a": "127.0.0.2", "node-b": "127.0.0.3"}
TOKEN_SECRET = "flow-tokens-shared-by-the-nodes"


def free_on_all(port: int) -> bool:
    """Whether ``port`` is free for UDP and TCP on every node address."""
    for ip in NODES.values():
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            with socket.socket(socket.AF_INET, kind) as s:
                try:
                    s.bind((ip, port))
                except OSError:
                    return False
    return True


def srv_zone(port: int) -> Zone:
    """SRV for the domain naming both nodes (equal priority and weight), their A records."""
    zone = Zone(negative_ttl=60)
    targets = [f"10 50 {port} {name}.{DOMAIN}." for name in NODES]
    for proto in ("udp", "tcp"):
        zone.add(f"_sip._{proto}.{DOMAIN}.", "SRV", 60, *targets)
    for name, ip in NODES.items():
        zone.add(f"{name}.{DOMAIN}.", "A", 60, ip)
    return zone


def node_toml(name: str, port: int, redis_port: int, dns_port: int, prefix: str) -> str:
    ip = NODES[name]
    return f"""\
[server]
listen = ["udp:{ip}:{port}", "tcp:{ip}:{port}"]
domains = ["{DOMAIN}"]
trusted = ["127.0.0.0/8"]
log_level = "debug"
shutdown_grace = 0.5

[registrar]
persist = false

[dns]
nameservers = ["{HOST}"]
port = {dns_port}
timeout = 1.0

[nat]
token_secret = "{TOKEN_SECRET}"

[ha]
backend = "redis"
redis_url = "redis://{HOST}:{redis_port}/0"
key_prefix = "{prefix}"
node = "{name}"
mode = "active-active"
stream_max_expires = 300

[api]
enabled = false
"""


class AaLab:
    """Redis, the DNS server and the two nodes of one test, each process bounded."""

    def __init__(self, workdir: Path, port: int, redis_port: int) -> None:
        self.dir = workdir
        self.port = port
        self.redis_port = redis_port
        self.zone = srv_zone(port)
        self.dns: DnsServer | None = None
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, timeout: float = 15.0) -> None:
        self.dns = DnsServer(self.zone)
        redis = shutil.which("redis-server") or "redis-server"
        args = [redis, "--bind", HOST, "--port", str(self.redis_port), "--save", ""]
        self._spawn("redis", [*args, "--appendonly", "no", "--dir", str(self.dir)])
        for name in NODES:
            config = self.dir / f"{name}.toml"
            toml = node_toml(name, self.port, self.redis_port, self.dns.port, "aa:")
            config.write_text(toml)
            self._spawn(name, [sys.executable, "-m", "sipedge", "run", "--config", str(config)])
        deadline = time.monotonic() + timeout
        for name, ip in NODES.items():
            while probe(ip, self.port, "udp", 0.5) != 200:
                if time.monotonic() > deadline or self.procs[name].poll() is not None:
                    raise RuntimeError(f"{name} never answered OPTIONS\n{self.report()}")

    def _spawn(self, name: str, cmd: list[str]) -> None:
        with (self.dir / f"{name}.log").open("wb") as out:
            self.procs[name] = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def srv_targets(self, proto: str) -> list[tuple[str, int]]:
        """(address, port) of every SRV target of ``_sip._PROTO.sipedge.test``, asked of
        the test DNS server the way a phone would (RFC 3263 §4.2), in answer order."""
        import dns.message
        import dns.query
        import dns.rdatatype

        assert self.dns is not None
        out = []
        query = dns.message.make_query(f"_sip._{proto}.{DOMAIN}.", "SRV")
        answer = dns.query.udp(query, HOST, timeout=2, port=self.dns.port)
        for rr in answer.answer[0]:
            a = dns.query.udp(dns.message.make_query(rr.target, "A"), HOST, 2, self.dns.port)
            out.append((a.answer[0][0].to_text(), int(rr.port)))
        return out

    def report(self, tail: int = 6000) -> str:
        parts = []
        for name in ("node-a", "node-b", "redis"):
            with contextlib.suppress(OSError):
                text = (self.dir / f"{name}.log").read_text(errors="replace")
                parts.append(f"--- {name}.log (tail):\n{text[-tail:]}")
        return "\n".join(parts)

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        if self.dns is not None:
            self.dns.close()


# A UA on one TCP connection (SIPp -t t1): REGISTER, then answer the call that arrives on
# the same connection; -cid_str gives it the caller's Call-ID (see the module text).
REG_UAS_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="sipedge ha active-active: register over tcp, then answer">
  <send>
    <![CDATA[
      REGISTER sip:{domain} SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[service]@{domain}>;tag=[pid]r[call_number]
      To: <sip:[service]@{domain}>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: <sip:[service]@[local_ip]:[local_port];transport=tcp>
      Expires: 3600
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200">
    <action>
      <!-- a stream client gets at most ha.stream_max_expires (300 s) -->
      <ereg regexp="expires=300" search_in="hdr" header="Contact:" check_it="true"
            assign_to="granted"/>
    </action>
  </recv>
  <recv request="INVITE" crlf="true"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_Record-Route:]
      [last_From:]
      [last_To:];tag=[pid]s[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[service]@[local_ip]:[local_port];transport=tcp>
      X-Registration: [$granted]
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=uas 1 1 IN IP4 [local_ip]
      s=-
      c=IN IP4 [local_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv request="ACK" crlf="true"/>
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
  <timewait milliseconds="300"/>
</scenario>
""".replace("{domain}", DOMAIN)

# The caller: INVITE with the callee's Call-ID, ACK and BYE along the recorded route.
UAC_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="sipedge ha active-active: call a user registered on the other node">
  <send retrans="500">
    <![CDATA[
      INVITE [ruri] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]c[call_number]
      To: <[ruri]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:caller@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=uac 1 1 IN IP4 [local_ip]
      s=-
      c=IN IP4 [local_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv response="100" optional="true"/>
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
      From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]c[call_number]
      To: <[ruri]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <pause milliseconds="200"/>
  <send retrans="500">
    <![CDATA[
      BYE [$target] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]c[call_number]
      To: <[ruri]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>
</scenario>
"""
