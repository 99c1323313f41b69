"""A real NAT in network namespaces for the NAT traversal interop tests.

Three namespaces, named uniquely per run and always deleted again::

    home (192.168.77.2/24) --- router (192.168.77.1 | 203.0.113.1) --- provider (203.0.113.10)

The router forwards and MASQUERADEs what leaves towards the provider, with ``--random``
so the NAT port differs from the client's own port, as on many home routers. Its
conntrack forgets an idle UDP mapping after ``udp_timeout`` seconds (both the unreplied
and the "stream" timeout are set), so the tests can watch a mapping expire in seconds.

Nothing here talks outside these namespaces. :func:`in_netns` runs a function in a
thread that has entered a namespace (``setns(2)``), so that a socket the test creates
there lives in that namespace; processes are started under ``ip netns exec``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

HOME_IP = "192.168.77.2"
ROUTER_LAN = "192.168.77.1"
ROUTER_WAN = "203.0.113.1"
PROVIDER_IP = "203.0.113.10"

T = TypeVar("T")
_CLONE_NEWNET = 0x40000000


def netns_unavailable() -> str | None:
    """Why the namespace tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian packages iproute2, iptables)"
    probe = f"natprobe{os.getpid()}{secrets.token_hex(2)}"
    made = _run(["ip", "netns", "add", probe], check=False)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.strip()}"
    _run(["ip", "netns", "del", probe], check=False)
    return None


def _run(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} -> {done.returncode}: {done.stderr.strip()}")
    return done


@dataclass
class NatTopology:
    """The three namespaces (see the module docstring); ``udp_timeout`` in seconds."""

    udp_timeout: int = 3
    tag: str = field(default_factory=lambda: f"{os.getpid() % 100000}{secrets.token_hex(2)}")
    created: list[str] = field(default_factory=list)

    @property
    def home(self) -> str:
        return f"nath{self.tag}"

    @property
    def router(self) -> str:
        return f"natr{self.tag}"

    @property
    def provider(self) -> str:
        return f"natp{self.tag}"

    def ip(self, ns: str, *args: str) -> None:
        _run(["ip", "-n", ns, *args])

    def sh(self, ns: str, *cmd: str) -> str:
        return _run(["ip", "netns", "exec", ns, *cmd]).stdout

    def sysctl(self, ns: str, key: str, value: int) -> None:
        """Set a per-namespace sysctl (as ``sysctl -w``, without needing procps)."""
        self.sh(ns, "sh", "-c", f"echo {int(value)} > /proc/sys/{key}")

    def create(self) -> None:
        """Build the namespaces, links, addresses, routes and the NAT."""
        for ns in (self.home, self.router, self.provider):
            _run(["ip", "netns", "add", ns])
            self.created.append(ns)
            self.ip(ns, "link", "set", "lo", "up")
        link = "ip link add {} netns {} type veth peer name {} netns {}"
        _run(link.format("eth0", self.home, "lan0", self.router).split())
        _run(link.format("wan0", self.router, "eth0", self.provider).split())
        for ns, dev, addr in (
            (self.home, "eth0", f"{HOME_IP}/24"),
            (self.router, "lan0", f"{ROUTER_LAN}/24"),
            (self.router, "wan0", f"{ROUTER_WAN}/24"),
            (self.provider, "eth0", f"{PROVIDER_IP}/24"),
        ):
            self.ip(ns, "addr", "add", addr, "dev", dev)
            self.ip(ns, "link", "set", dev, "up")
        self.ip(self.home, "route", "add", "default", "via", ROUTER_LAN)
        r = self.router
        self.sysctl(r, "net/ipv4/ip_forward", 1)
        masquerade = "-t nat -A POSTROUTING -o wan0 -j MASQUERADE --random"
        self.sh(r, "iptables", *masquerade.split(" "))
        # Conntrack is per namespace: the router forgets idle UDP mappings quickly.
        self.sysctl(r, "net/netfilter/nf_conntrack_udp_timeout", self.udp_timeout)
        self.sysctl(r, "net/netfilter/nf_conntrack_udp_timeout_stream", self.udp_timeout)

    def destroy(self) -> None:
        """Kill what still runs in our namespaces (only ours), then delete them."""
        for ns in self.created:
            pids = _run(["ip", "netns", "pids", ns], check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
        for ns in reversed(self.created):
            _run(["ip", "netns", "del", ns], check=False)
        self.created.clear()

    def conntrack_udp(self) -> str:
        """The router's UDP conntrack entries (for failure messages)."""
        done = _run(["ip", "netns", "exec", self.router, "cat", "/proc/net/nf_conntrack"], False)
        return "\n".join(ln for ln in done.stdout.splitlines() if " udp " in ln) or done.stderr


def in_netns(ns: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a thread that entered network namespace ``ns``; return its result.

    Sockets ``fn`` creates stay in that namespace after the thread has ended.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                if libc.setns(fd, _CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({ns}): {os.strerror(err)}")
            finally:
                os.close(fd)
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    thread = threading.Thread(target=run, name=f"netns-{ns}")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
