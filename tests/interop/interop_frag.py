"""Two network namespaces joined by a veth pair (MTU 1500) and rtpengine in one of them.

The "client" namespace (10.98.0.1) plays the proxy host, the "relay" namespace (10.98.0.2)
the rtpengine host. UDP ng replies over 1500 bytes cross the veth as IP fragments; a
raw-table PREROUTING rule in the client namespace drops fragments the way a firewall does
(iptables ``u32`` on the fragment offset; the kernel reassembles before INPUT, so the rule
must sit in ``raw``). Names carry the pid of the test run, every process is stopped by its
pid and both namespaces are deleted at the end, also after a failure.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path

CLIENT_IP, RELAY_IP = "10.98.0.1", "10.98.0.2"
NG_UDP, NG_TCP, NG_HTTP = 22222, 22223, 22225
UDP_NODE = f"udp:{RELAY_IP}:{NG_UDP}"
TCP_NODE = f"tcp:{RELAY_IP}:{NG_TCP}"
WS_NODE = f"ws://{RELAY_IP}:{NG_HTTP}/ng"
FRAGMENT_RULE = ["-m", "u32", "--u32", "4&0x3FFF=0x1:0x3FFF", "-j", "DROP"]
_PREFIX = "sefrag"
HELPER = Path(__file__).with_name("interop_frag_client.py")


def why_not() -> str | None:
    """Why the namespace tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    tools = (("ip", "iproute2"), ("iptables", "iptables"), ("rtpengine", "rtpengine-daemon"))
    for tool, package in tools:
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian package {package})"
    probe = f"{_PREFIX}{os.getpid()}-probe"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.strip()}"
    try:
        rule = ["iptables", "-t", "raw", "-A", "PREROUTING", *FRAGMENT_RULE]
        added = subprocess.run(
            ["ip", "netns", "exec", probe, *rule], capture_output=True, text=True
        )
        if added.returncode != 0:
            return f"iptables u32 rule refused in a namespace: {added.stderr.strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _run(*args: str) -> None:
    subprocess.run(list(args), check=True, capture_output=True, timeout=10)


class NamespacePair:
    """The two namespaces; :meth:`close` kills what runs in them and deletes them."""

    def __init__(self) -> None:
        tag = f"{os.getpid()}-{secrets.token_hex(2)}"
        self.client, self.relay = f"{_PREFIX}{tag}-c", f"{_PREFIX}{tag}-r"
        self._veth = f"vf{secrets.token_hex(4)}"

    def create(self) -> None:
        """Make both namespaces and the veth pair; on failure undo what was made."""
        _remove_stale()
        try:
            _run("ip", "netns", "add", self.client)
            _run("ip", "netns", "add", self.relay)
            c, r = f"{self._veth}c", f"{self._veth}r"
            _run("ip", "link", "add", c, "netns", self.client, "type", "veth",
                 "peer", "name", r, "netns", self.relay)  # fmt: skip
            for ns, dev, ip in ((self.client, c, CLIENT_IP), (self.relay, r, RELAY_IP)):
                _run("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
                _run("ip", "-n", ns, "link", "set", dev, "mtu", "1500", "up")
                _run("ip", "-n", ns, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise

    def exec(self, ns: str, *args: str) -> list[str]:
        """The command line running ``args`` inside ``ns``."""
        return ["ip", "netns", "exec", ns, *args]

    def drop_fragments(self, on: bool) -> None:
        """Add (or delete) the fragment-dropping rule in the client namespace."""
        action = "-A" if on else "-D"
        _run(*self.exec(self.client, "iptables", "-t", "raw", action, "PREROUTING", *FRAGMENT_RULE))

    def dropped_fragments(self) -> int:
        """Packets the fragment rule has dropped so far."""
        out = subprocess.run(
            self.exec(self.client, "iptables", "-t", "raw", "-L", "PREROUTING", "-n", "-v", "-x"),
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout  # fmt: skip
        rows = [line.split() for line in out.splitlines() if "DROP" in line]
        return sum(int(row[0]) for row in rows)

    def close(self) -> None:
        """SIGKILL the processes left in our namespaces (by pid), then delete them."""
        for ns in (self.client, self.relay):
            _delete_namespace(ns)


def _delete_namespace(ns: str) -> None:
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
    for pid in pids.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _remove_stale() -> None:
    """Delete namespaces of earlier runs whose process is gone (a crash or SIGKILL)."""
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for line in listing.splitlines():
        name = line.split()[0] if line.split() else ""
        pid = name.removeprefix(_PREFIX).split("-")[0]
        if name.startswith(_PREFIX) and pid.isdigit() and not Path(f"/proc/{pid}").exists():
            _delete_namespace(name)


class NamespacedRtpEngine:
    """rtpengine inside the relay namespace: ng on UDP, TCP and HTTP/WS of RELAY_IP."""

    def __init__(self, pair: NamespacePair, workdir: Path) -> None:
        self.pair = pair
        self.log = workdir / "rtpengine.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the daemon; :func:`client` with ``--wait`` waits for its first pong."""
        binary = shutil.which("rtpengine")
        assert binary is not None
        args = [
            binary, "--config-file=none", "--foreground", "--log-stderr", "--table=-1",
            f"--interface={RELAY_IP}", f"--listen-ng={RELAY_IP}:{NG_UDP}",
            f"--listen-tcp-ng={RELAY_IP}:{NG_TCP}", f"--listen-http={RELAY_IP}:{NG_HTTP}",
            "--port-min=30000", "--port-max=30199", "--delete-delay=0", "--log-level=5",
        ]  # fmt: skip
        with self.log.open("wb") as log:
            # ip netns exec execs the daemon: the child's pid is rtpengine's own
            self._proc = subprocess.Popen(
                self.pair.exec(self.pair.relay, *args), stdout=log, stderr=subprocess.STDOUT
            )

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; only our own process."""
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)


def in_client(
    pair: NamespacePair, *args: str, timeout: float = 20
) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGS`` (this interpreter) inside the client namespace."""
    root = Path(__file__).resolve().parents[2]
    return subprocess.run(
        pair.exec(pair.client, sys.executable, *args),
        capture_output=True, text=True, timeout=timeout, cwd=root,
    )  # fmt: skip
