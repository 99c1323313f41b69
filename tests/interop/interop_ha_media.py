"""rtpengine for the HA test: one daemon in the Redis namespace, used by both sipedge nodes.

rtpengine (Debian ``rtpengine-daemon``) runs in userspace mode (``--table=-1``,
``--config-file=none``) on REDIS_IP with its own ng port and media port range,
``--delete-delay=0`` (a deleted call leaves ``list`` at once) and a long ``--timeout``
(calls without RTP, as SIPp's, are not dropped by rtpengine itself during the test: a
Call-ID that leaves ``list`` was deleted over ng). It is queried over ng from inside its
own namespace by running this file there::

    python interop_ha_media.py list|ping HOST:PORT

which prints one JSON object (``{"calls": [...]}`` or ``{"result": ...}``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from interop_ha import REDIS_IP, HaLab

from sipedge.media.ng import encode_message, parse_message

NG_PORT = 22222
PORT_MIN, PORT_MAX = 30000, 30099
SELF = Path(__file__).resolve()


def media_toml() -> str:
    """The ``[media]`` section of both nodes: every call with SDP through the daemon."""
    return (
        f'\n[media]\nenabled = true\nnodes = ["udp:{REDIS_IP}:{NG_PORT}"]\n'
        "timeout = 1.0\nretransmit = 0.25\nping_interval = 0\n"
    )


class LabRtpEngine:
    """The daemon in ``lab.redis``; :meth:`stop` is safe to call twice."""

    def __init__(self, lab: HaLab) -> None:
        self.lab = lab
        self.log = lab.dir / "rtpengine.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def missing() -> str | None:
        """Why rtpengine cannot run here, or None."""
        if shutil.which("rtpengine") is None:
            return "rtpengine is not installed (Debian package rtpengine-daemon)"
        return None

    def start(self, timeout: float = 10.0) -> None:
        """Start the daemon and wait until it answers an ng ping."""
        args = [
            "rtpengine", "--config-file=none", "--foreground", "--log-stderr", "--table=-1",
            f"--interface={REDIS_IP}", f"--listen-ng={REDIS_IP}:{NG_PORT}",
            f"--port-min={PORT_MIN}", f"--port-max={PORT_MAX}", "--delete-delay=0",
            "--timeout=600", "--silent-timeout=600", "--log-level=6",
        ]  # fmt: skip
        self.proc = self.lab.spawn(self.lab.redis, args, self.log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rtpengine exited:\n{self.report()}")
            with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
                if self._ng("ping").get("result") == "pong":
                    return
            time.sleep(0.1)
        raise RuntimeError(f"rtpengine did not answer a ping within {timeout} s\n{self.report()}")

    def calls(self) -> list[str]:
        """The Call-IDs rtpengine holds (ng ``list``, sent from inside its namespace)."""
        calls = self._ng("list").get("calls", [])
        assert isinstance(calls, list), calls
        return [str(c) for c in calls]

    def wait_gone(self, call_id: str | None, timeout: float) -> bool:
        """Wait until ``call_id`` (None: every call) has left ``list``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            calls = self.calls()
            if (call_id not in calls) if call_id is not None else not calls:
                return True
            time.sleep(0.2)
        return False

    def _ng(self, command: str) -> dict[str, object]:
        cmd = ["ip", "netns", "exec", self.lab.redis, sys.executable, str(SELF), command]
        done = subprocess.run(
            [*cmd, f"{REDIS_IP}:{NG_PORT}"], capture_output=True, text=True, timeout=10
        )
        if done.returncode != 0:
            raise AssertionError(f"ng {command}: rc={done.returncode}\n{done.stderr[-1500:]}")
        out: dict[str, object] = json.loads(done.stdout)
        return out

    def report(self, tail: int = 3000) -> str:
        """The end of the daemon's log."""
        try:
            return f"--- rtpengine.log:\n{self.log.read_text(errors='replace')[-tail:]}"
        except OSError:
            return "--- rtpengine.log: (none)"

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; only our own process."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


# -- SDP checks on SIPp message logs ---------------------------------------------------------
_RECEIVED = re.compile(r"message received \[\d+\] bytes :\n\n(.*?)(?=\n-{20,}|\Z)", re.S)


def received(log: str, start: str) -> list[str]:
    """The messages of a SIPp ``messages.log`` that were received and begin with ``start``
    (``"INVITE "``, ``"SIP/2.0 200"``)."""
    text = log.replace("\r\n", "\n")
    return [m for m in _RECEIVED.findall(text) if m.lstrip().startswith(start)]


def relayed_sdp(message: str) -> bool:
    """Whether the SDP of ``message`` points at the daemon: c= its address, m= a port of
    its range."""
    conn = re.findall(r"^c=IN IP4 (\S+)", message, re.M)
    ports = [int(p) for p in re.findall(r"^m=audio (\d+) ", message, re.M)]
    return (
        bool(conn and ports)
        and all(c == REDIS_IP for c in conn)
        and all(PORT_MIN <= p <= PORT_MAX for p in ports)
    )


def call_id_of(log: str) -> str:
    """The Call-ID of the first message in a SIPp ``messages.log``."""
    found = re.search(r"^Call-ID:\s*(\S+)", log.replace("\r\n", "\n"), re.M | re.I)
    assert found is not None, log[-2000:]
    return found.group(1)


# -- the ng client run inside the namespace --------------------------------------------------
def _exchange(addr: str, command: str, timeout: float = 2.0) -> dict[str, object]:
    host, port = addr.rsplit(":", 1)
    cookie = f"ha{time.monotonic_ns()}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.25)
        s.connect((host, int(port)))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s.send(encode_message(cookie, {"command": command}))
            try:
                reply = parse_message(s.recv(1 << 17))
            except (TimeoutError, ConnectionRefusedError):
                continue
            if reply.cookie == cookie:
                return dict(reply.body)
    raise SystemExit(f"no ng reply to {command} from {addr}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=("list", "ping"))
    ap.add_argument("addr")
    a = ap.parse_args()
    print(json.dumps(_exchange(a.addr, a.command), default=str))


if __name__ == "__main__":
    main()
