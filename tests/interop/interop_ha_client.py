"""SIP clients of the HA test, run inside the client namespace (standard library only).

    python interop_ha_client.py ping     --src IP --vip IP [--timeout S]
    python interop_ha_client.py wait-up  --src IP --vip IP --timeout S
    python interop_ha_client.py register --src IP --vip IP --users N
    python interop_ha_client.py query    --src IP --vip IP --users N
    python interop_ha_client.py flood    --src IP --vip IP --count N

Each prints one JSON object. ``register`` binds ``sip:userK@VIP`` (K = 1..N) to
``sip:userK@SRC:(20000+K)``; ``query`` sends a REGISTER without Contact for each of them
(RFC 3261 §10.2.3) and counts those whose answer still lists that Contact.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import time

PORT = 5060


def request(method: str, src: str, sport: int, vip: str, user: str, extra: list[str]) -> bytes:
    tag = os.urandom(5).hex()
    to = f"sip:{user}@{vip}" if user else f"sip:{vip}:{PORT}"
    lines = [
        f"{method} sip:{vip}:{PORT} SIP/2.0",
        f"Via: SIP/2.0/UDP {src}:{sport};branch=z9hG4bK-{tag};rport",
        "Max-Forwards: 70",
        f"From: <{to}>;tag={tag}",
        f"To: <{to}>",
        f"Call-ID: ha-{tag}@{src}",
        f"CSeq: 1 {method}",
        *extra,
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def exchange(sock: socket.socket, vip: str, msg: bytes, timeout: float) -> str | None:
    """Send (resending every 0.25 s) until a final response arrives or the timeout."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        sock.sendto(msg, (vip, PORT))
        sock.settimeout(min(0.25, left))
        try:
            while True:
                text = sock.recv(65535).decode("utf-8", "replace")
                if text.startswith("SIP/2.0 ") and not text.startswith("SIP/2.0 1"):
                    return text
        except (TimeoutError, ConnectionRefusedError):
            continue
    return None


def udp(src: str, port: int = 0) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, port))
    return s


def ping(src: str, vip: str, timeout: float) -> int | None:
    with udp(src) as s:
        reply = exchange(s, vip, request("OPTIONS", src, s.getsockname()[1], vip, "", []), timeout)
    return int(reply.split()[1]) if reply else None


def contact(src: str, k: int) -> str:
    return f"sip:user{k}@{src}:{20000 + k}"


def register(src: str, vip: str, users: int, query: bool) -> int:
    good = 0
    with udp(src) as s:
        for k in range(1, users + 1):
            extra = [] if query else [f"Contact: <{contact(src, k)}>", "Expires: 600"]
            msg = request("REGISTER", src, s.getsockname()[1], vip, f"user{k}", extra)
            reply = exchange(s, vip, msg, 3.0)
            if reply and reply.startswith("SIP/2.0 200") and contact(src, k) in reply:
                good += 1
    return good


def flood(src: str, vip: str, count: int) -> int:
    """Send ``count`` OPTIONS back to back; how many got an answer."""
    answered = 0
    with udp(src) as s:
        s.settimeout(0.001)
        for _ in range(count):
            s.sendto(request("OPTIONS", src, s.getsockname()[1], vip, "", []), (vip, PORT))
            try:
                s.recv(65535)
                answered += 1
            except (TimeoutError, ConnectionRefusedError):
                pass
    return answered


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=("ping", "wait-up", "register", "query", "flood"))
    ap.add_argument("--src", required=True)
    ap.add_argument("--vip", required=True)
    ap.add_argument("--timeout", type=float, default=1.0)
    ap.add_argument("--users", type=int, default=10)
    ap.add_argument("--count", type=int, default=50)
    a = ap.parse_args()
    out: dict[str, object]
    if a.command == "ping":
        out = {"status": ping(a.src, a.vip, a.timeout)}
    elif a.command == "wait-up":
        deadline = time.monotonic() + a.timeout
        status = None
        while status != 200 and time.monotonic() < deadline:
            status = ping(a.src, a.vip, 0.1)
        out = {"status": status, "at": time.time()}
    elif a.command in ("register", "query"):
        out = {"ok": register(a.src, a.vip, a.users, a.command == "query")}
    else:
        out = {"answered": flood(a.src, a.vip, a.count)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
