"""The proxy under test, run as a foreground subprocess on loopback ports.

``SIPEDGE_TEST_PROXY`` picks the implementation: ``sipedge`` (default) or ``kamailio``, a
development stand-in configured from ``devpeer/kamailio.cfg.in`` to route the same way.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from interop_net import HOST, ping_tcp, ping_udp

DEVPEER = Path(__file__).parent / "devpeer"
KINDS = ("sipedge", "kamailio")


def proxy_kind() -> str:
    """The proxy implementation selected by SIPEDGE_TEST_PROXY."""
    kind = os.environ.get("SIPEDGE_TEST_PROXY", "sipedge").strip().lower() or "sipedge"
    if kind not in KINDS:
        raise ValueError(f"SIPEDGE_TEST_PROXY={kind!r}: expected one of {KINDS}")
    return kind


@dataclass(frozen=True)
class Topology:
    """Loopback ports of one test: the proxy (UDP and TCP) and the UASes it routes to."""

    proxy: int
    uas: int  # a UAS reached through its Request-URI (no route)
    tcp_uas: int  # target of route "tcp-uas" (users tcp*), over TCP
    fork_a: int  # first target of route "fork" (users fork*)
    fork_b: int  # second target of route "fork"


def sipedge_toml(topo: Topology) -> str:
    """The sipedge configuration for a topology (the schema is kept to the minimum)."""
    p = topo.proxy
    return f"""\
[server]
listen = ["udp:{HOST}:{p}", "tcp:{HOST}:{p}"]
trusted = ["127.0.0.0/8"]
log_level = "info"

[[proxy.routes]]
name = "fork"
user_prefix = "fork"
to = ["sip:{HOST}:{topo.fork_a}", "sip:{HOST}:{topo.fork_b}"]

[[proxy.routes]]
name = "tcp-uas"
user_prefix = "tcp"
to = "sip:{HOST}:{topo.tcp_uas};transport=tcp"
"""


def kamailio_cfg(topo: Topology) -> str:
    """The Kamailio stand-in configuration for a topology."""
    text = (DEVPEER / "kamailio.cfg.in").read_text()
    values = {
        "PORT": topo.proxy,
        "FORK1": topo.fork_a,
        "FORK2": topo.fork_b,
        "TCPUAS": topo.tcp_uas,
    }
    for name, value in values.items():
        text = text.replace(f"@{name}@", str(value))
    return text


class ProxyProcess:
    """One proxy subprocess: start, wait ready, stop (TERM then KILL), restart, stderr."""

    def __init__(self, kind: str, topo: Topology, workdir: Path) -> None:
        self.kind = kind
        self.topo = topo
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.command = self._prepare()

    def _prepare(self) -> list[str]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        p = self.topo.proxy
        if self.kind == "kamailio":
            cfg = self.workdir / "kamailio.cfg"
            cfg.write_text(kamailio_cfg(self.topo))
            exe = shutil.which("kamailio") or "/usr/sbin/kamailio"
            run = str(self.workdir)
            return [exe, "-f", str(cfg), "-DD", "-E", "-m", "32", "-M", "8", "-Y", run, "-w", run]
        toml = self.workdir / "sipedge.toml"
        toml.write_text(sipedge_toml(self.topo))
        listen = [f"udp:{HOST}:{p}", f"tcp:{HOST}:{p}"]
        cmd = [sys.executable, "-m", "sipedge", "run", "--config", str(toml)]
        for item in listen:
            cmd += ["--listen", item]
        return cmd

    @property
    def stderr_path(self) -> Path:
        return self.workdir / f"proxy-{self.starts}.stderr"

    def start(self, ready_timeout: float = 5.0) -> None:
        """Start the proxy and wait until UDP and TCP both answer an OPTIONS."""
        self.starts += 1
        with self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
            )
        deadline = time.monotonic() + ready_timeout
        udp_ok = tcp_ok = False
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"proxy exited early\n{self.describe()}")
            udp_ok = udp_ok or ping_udp(self.topo.proxy) is not None
            tcp_ok = tcp_ok or ping_tcp(self.topo.proxy) is not None
            if udp_ok and tcp_ok:
                return
            time.sleep(0.05)
        self.kill()
        raise AssertionError(
            f"proxy not ready in {ready_timeout}s (udp={udp_ok}, tcp={tcp_ok})\n{self.describe()}"
        )

    def terminate(self, grace: float) -> int | None:
        """SIGTERM the main process; SIGKILL the group after `grace` s. The exit code if
        it exited by itself in time, else None."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return None if proc is None else proc.returncode
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        finally:
            self._reap_group()

    def kill(self) -> None:
        """SIGKILL the proxy and every process of its session (a crash)."""
        proc = self.proc
        if proc is None:
            return
        self._signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)

    def restart(self, ready_timeout: float = 5.0) -> None:
        """Kill the proxy and start it again on the same ports."""
        self.kill()
        self.start(ready_timeout)

    def stop(self, grace: float = 3.0) -> None:
        """Teardown: graceful stop with a bound, then make sure nothing is left."""
        self.terminate(grace)
        self._reap_group()

    def _reap_group(self) -> None:
        self._signal_group(signal.SIGKILL)

    def _signal_group(self, sig: signal.Signals) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def stderr_text(self) -> str:
        """Everything the current run wrote to stdout/stderr."""
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def describe(self, tail: int = 4000) -> str:
        """Command, state and the tail of the output, for failure messages."""
        rc = None if self.proc is None else self.proc.poll()
        text = self.stderr_text()
        return (
            f"--- proxy {self.kind} (start #{self.starts}, rc={rc}): {' '.join(self.command)}\n"
            f"--- proxy output (last {tail} chars):\n{text[-tail:]}"
        )
