"""Helpers of the media interop tests: a real rtpengine, sipedge with ``[media]`` on, a UDP
socket that swallows ng commands (a dead relay node), and SDP checks on SIPp traces."""

from __future__ import annotations

import re
import socket
import sys
import threading
import time
from pathlib import Path

from interop_proxy import ProxyProcess, Topology, sipedge_toml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "media"))
from media_support import RtpEngineDaemon

HOST = "127.0.0.1"

__all__ = ["BlackHole", "MediaProxy", "RtpEngineDaemon", "media_ports"]


class MediaProxy(ProxyProcess):
    """sipedge on the interop topology with ``[media]`` relaying through ``nodes``."""

    def __init__(self, topo: Topology, workdir: Path, nodes: list[str], extra: str = "") -> None:
        self.nodes = nodes
        self.extra = extra
        super().__init__("sipedge", topo, workdir)

    def _prepare(self) -> list[str]:
        command = super()._prepare()
        toml = self.workdir / "sipedge.toml"
        items = ", ".join(f'"{n}"' for n in self.nodes)
        toml.write_text(
            sipedge_toml(self.topo)
            + f"\n[media]\nenabled = true\nnodes = [{items}]\ntimeout = 1.0\n"
            + "retransmit = 0.25\nping_interval = 0\n"
            + self.extra
        )
        return command


class BlackHole:
    """A UDP socket on loopback that reads ng commands and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        #: cookie -> when it first arrived (time.monotonic)
        self.cookies: dict[bytes, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def spec(self) -> str:
        return f"udp:{HOST}:{self.port}"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, OSError):
                continue
            self.cookies.setdefault(data.split(b" ", 1)[0], time.monotonic())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


_MEDIA = re.compile(r"^m=audio (\d+) ", re.M)
_CONN = re.compile(r"^c=IN IP4 (\S+)", re.M)


def media_ports(text: str) -> list[int]:
    """The m=audio ports of an SDP (or a whole message)."""
    return [int(p) for p in _MEDIA.findall(text.replace("\r\n", "\n"))]


def connection(text: str) -> list[str]:
    """The c= addresses of an SDP (or a whole message)."""
    return _CONN.findall(text.replace("\r\n", "\n"))
