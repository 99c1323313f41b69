"""The health check of the Pacemaker resource agent: one SIP OPTIONS to the node.

``python -m sipedge.ha.probe HOST PORT [--transport udp|tcp] [--timeout S]`` sends an
OPTIONS addressed to the proxy itself (no user part, RFC 3261 §11) and exits 0 when a 2xx
comes back, 1 on any other answer (a draining proxy answers 503) and 2 on no answer. Over
UDP the request is resent at T1, doubling (RFC 3261 §17.1.2.2), until the timeout.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys
import time

__all__ = ["main", "options_request", "probe"]

NO_ANSWER = 2
BAD_ANSWER = 1


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def options_request(host: str, port: int, transport: str, local: tuple[str, int]) -> bytes:
    """An OPTIONS for ``sip:host:port`` sent from ``local`` (with rport, RFC 3581)."""
    tag = os.urandom(6).hex()
    me = _hostport(local[0], local[1])
    target = _hostport(host, port)
    lines = [
        f"OPTIONS sip:{target} SIP/2.0",
        f"Via: SIP/2.0/{transport.upper()} {me};branch=z9hG4bK-ha-{tag};rport",
        "Max-Forwards: 70",
        f"From: <sip:ha-probe@{me}>;tag={tag}",
        f"To: <sip:{target}>",
        f"Call-ID: ha-probe-{tag}",
        "CSeq: 1 OPTIONS",
        "User-Agent: sipedge-ha-probe",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def status_of(data: bytes) -> int | None:
    """The status code of a SIP response, or None."""
    first = data.split(b"\r\n", 1)[0].split(b" ", 2)
    if len(first) >= 2 and first[0] == b"SIP/2.0" and first[1].isdigit():
        return int(first[1])
    return None


def probe(host: str, port: int, transport: str = "udp", timeout: float = 2.0) -> int | None:
    """The status of the first final answer to an OPTIONS, or None when none came."""
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    deadline = time.monotonic() + timeout
    try:
        if transport == "tcp":
            return _probe_tcp(family, host, port, deadline)
        return _probe_udp(family, host, port, deadline)
    except OSError:
        return None


def _probe_udp(family: socket.AddressFamily, host: str, port: int, deadline: float) -> int | None:
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.connect((host, port))
        msg = options_request(host, port, "udp", s.getsockname()[:2])
        interval = 0.5
        while (left := deadline - time.monotonic()) > 0:
            s.send(msg)
            wait_until = time.monotonic() + min(interval, left)
            while (rest := wait_until - time.monotonic()) > 0:
                s.settimeout(rest)
                try:
                    status = status_of(s.recv(65535))
                except TimeoutError:
                    break
                if status is not None and status >= 200:
                    return status
            interval *= 2
    return None


def _probe_tcp(family: socket.AddressFamily, host: str, port: int, deadline: float) -> int | None:
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        s.connect((host, port))
        s.sendall(options_request(host, port, "tcp", s.getsockname()[:2]))
        data = b""
        while (left := deadline - time.monotonic()) > 0:
            s.settimeout(left)
            chunk = s.recv(65535)
            if not chunk:
                return None
            data += chunk
            while b"\r\n\r\n" in data:
                head, _, data = data.partition(b"\r\n\r\n")
                status = status_of(head)
                if status is not None and status >= 200:
                    return status
    return None


def main(argv: list[str] | None = None) -> int:
    """The command line: exit 0 on 2xx, 1 on another answer, 2 on none."""
    ap = argparse.ArgumentParser(prog="python -m sipedge.ha.probe", description=__doc__)
    ap.add_argument("host", help="IP address of the listener (the floating IP)")
    ap.add_argument("port", type=int, help="its port")
    ap.add_argument("--transport", choices=("udp", "tcp"), default="udp")
    ap.add_argument("--timeout", type=float, default=2.0, help="seconds to wait in all")
    args = ap.parse_args(argv)
    status = probe(args.host, args.port, args.transport, args.timeout)
    if status is None:
        print(f"no answer from {args.transport}:{_hostport(args.host, args.port)}")
        return NO_ANSWER
    print(f"{status} from {args.transport}:{_hostport(args.host, args.port)}")
    return 0 if 200 <= status < 300 else BAD_ANSWER


if __name__ == "__main__":
    sys.exit(main())
