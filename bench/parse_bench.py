"""Micro-benchmark of the SIP core: messages parsed per second and forwarded-with-edits.

Not a test. Run: ``.venv/bin/python bench/parse_bench.py [--seconds 2] [--repeat 5]
[--path c|pure|both]``. Reports, on one core, typical INVITEs parsed/s, typical 200 OKs
parsed/s, and INVITEs parsed, edited as a proxy edits them (Max-Forwards, Via,
Record-Route) and serialised, per second; for the C accelerator and for the pure-Python
parser, each the best and the median of ``--repeat`` runs (pin with ``taskset -c 1`` on a
busy machine).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

from sipedge.sip import _accel
from sipedge.sip.parser import parse_message

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    b"User-Agent: SIPp/Linux\r\n"
    b"Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, MESSAGE, SUBSCRIBE, INFO\r\n"
    b"Supported: replaces, timer\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 142\r\n"
    b"\r\n"
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 pc33.atlanta.example.com\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.101\r\n"
    b"t=0 0\r\n"
    b"m=audio 49172 RTP/AVP 0\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
)

OK200 = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKproxy77;received=192.0.2.1\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport=5060\r\n"
    b"Record-Route: <sip:192.0.2.1;lr>\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:bob@192.0.2.4:5062>\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def forward_invite() -> None:
    m = parse_message(INVITE)
    m.set_max_forwards((m.max_forwards or 70) - 1)
    m.push_via("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKproxy77")
    m.add_record_route("<sip:192.0.2.1;lr>")
    m.to_bytes()


def forward_200() -> None:
    m = parse_message(OK200)
    m.pop_via()
    m.to_bytes()


def rate(fn: Callable[[], object], seconds: float) -> float:
    n = 0
    batch = 1000
    start = time.perf_counter()
    end = start + seconds
    while True:
        for _ in range(batch):
            fn()
        n += batch
        now = time.perf_counter()
        if now >= end:
            return n / (now - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=2.0, help="length of one run")
    ap.add_argument("--repeat", type=int, default=3, help="runs per case (best and median)")
    ap.add_argument("--path", choices=("c", "pure", "both"), default="both")
    args = ap.parse_args()
    cases: list[tuple[str, Callable[[], object]]] = [
        ("parse INVITE", lambda: parse_message(INVITE)),
        ("parse 200 OK", lambda: parse_message(OK200)),
        ("forward INVITE (parse+edit+serialise)", forward_invite),
        ("forward 200 OK (parse+pop Via+serialise)", forward_200),
    ]
    built = _accel.SPEEDUPS
    paths = ["c", "pure"] if args.path == "both" else [args.path]
    print(f"python {platform.python_version()} on {platform.machine()}, one core")
    for path in paths:
        if path == "c" and built is None:
            print("C accelerator: not built (or SIPEDGE_PURE=1 is set)")
            continue
        _accel.SPEEDUPS = built if path == "c" else None
        title = "C accelerator" if path == "c" else "pure Python"
        print(f"{title:45s} {'best':>10s} {'median':>10s}")
        for name, fn in cases:
            rate(fn, 0.3)  # warm-up
            runs = [rate(fn, args.seconds) for _ in range(max(1, args.repeat))]
            print(f"  {name:43s} {max(runs):>10,.0f} {statistics.median(runs):>10,.0f} /s")
    _accel.SPEEDUPS = built


if __name__ == "__main__":
    main()
