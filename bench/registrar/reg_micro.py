"""In-process digest REGISTER cost: the whole sipedge stack minus the socket syscalls.

Not a test and not the rate benchmark (that is ``reg_rate.py`` with SIPp): a quick way to
see what one digest-authenticated registration costs in sipedge's own code while changing
it. One App with the registrar bench's config (``peers.sipedge_config``, auth on, security
off, one contact per AOR) is started on loopback; the benchmark then feeds REGISTER →
(401) → REGISTER with Authorization → (200) straight into the engine, as the UDP listener
would, with the listener's ``sendto`` replaced by a list append. Only the server's share is
timed (``time.process_time`` around each feed and the loop turns it needs); the client's
digest arithmetic is not.

    .venv/bin/python bench/registrar/reg_micro.py --count 20000 [--profile out.pstats]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import hashlib
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import Site, sipedge_config, sipedge_users

from sipedge.app import App, tune_gc
from sipedge.config import load_config
from sipedge.transport.base import Flow

CLIENT = ("127.0.0.7", 5061)


def register(site: Site, user: str, n: int, cseq: int, auth: str = "") -> bytes:
    """The bench scenario's REGISTER (reg_auth.xml), as SIPp sends it."""
    lines = [
        f"REGISTER sip:{site.ip}:{site.port} SIP/2.0",
        f"Via: SIP/2.0/UDP {CLIENT[0]}:{CLIENT[1]};branch=z9hG4bK-{n}-{cseq}",
        "Max-Forwards: 70",
        f"From: <sip:{user}@{site.ip}>;tag=r{n}x1",
        f"To: <sip:{user}@{site.ip}>",
        f"Call-ID: {n}-bench@{CLIENT[0]}",
        f"CSeq: {cseq} REGISTER",
        f"Contact: <sip:{user}@{CLIENT[0]}:{CLIENT[1]}>",
    ]
    if auth:
        lines.append(auth)
    lines += ["Expires: 3600", "Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode()


def answer(site: Site, challenge: bytes, user: str, password: str) -> str:
    """An MD5 qop=auth Authorization for the first challenge (what SIPp answers)."""
    m = re.search(rb'nonce="([^"]+)"', challenge)
    assert m is not None, challenge
    nonce = m.group(1).decode()
    uri = f"sip:{site.ip}:{site.port}"
    ha1 = hashlib.md5(f"{user}:{site.realm}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"REGISTER:{uri}".encode()).hexdigest()
    cnonce, nc = "0a4f113b", "00000001"
    resp = hashlib.md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}".encode()).hexdigest()
    return (
        f'Authorization: Digest username="{user}",realm="{site.realm}",nonce="{nonce}",'
        f'uri="{uri}",response="{resp}",algorithm=MD5,cnonce="{cnonce}",qop=auth,nc={nc}'
    )


async def run(args: argparse.Namespace, site: Site, cfg: Path) -> None:
    app = App(load_config(cfg))
    await app.start()
    tune_gc()
    sent: list[bytes] = []
    listener = next(iter(app.transport._udp.values()))
    listener.sendto = lambda data, addr: sent.append(data) or True  # type: ignore[method-assign]
    flow = Flow("udp", (site.ip, site.port), CLIENT)
    loop = asyncio.get_running_loop()

    async def feed(data: bytes) -> bytes:
        sent.clear()
        app.engine.on_message(data, flow)
        for _ in range(20):
            if sent:
                break
            await asyncio.sleep(0)
        assert sent, "no answer"
        return sent[-1]

    spent = 0.0
    prof = cProfile.Profile() if args.profile else None
    wall = time.perf_counter()
    for n in range(args.count):
        i = n % args.users + 1
        user = f"a{i}"
        t0 = time.process_time()
        if prof is not None:
            prof.enable()
        first = await feed(register(site, user, n, 1))
        if prof is not None:
            prof.disable()
        spent += time.process_time() - t0
        assert first.startswith(b"SIP/2.0 401"), first[:40]
        auth = answer(site, first, user, f"p{i}x")
        msg = register(site, user, n, 2, auth)
        t0 = time.process_time()
        if prof is not None:
            prof.enable()
        second = await feed(msg)
        if prof is not None:
            prof.disable()
        spent += time.process_time() - t0
        assert second.startswith(b"SIP/2.0 200"), second[:60]
    wall = time.perf_counter() - wall
    del loop
    per = spent / args.count * 1e6
    print(
        f"registrations={args.count} server_cpu_per_registration_us={per:.1f}"
        f" => {1e6 / per:.0f}/s on one core (no syscalls); wall {wall:.1f}s"
    )
    if prof is not None:
        prof.dump_stats(args.profile)
    await app.stop(0.1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--users", type=int, default=10000)
    ap.add_argument("--port", type=int, default=5090)
    ap.add_argument("--profile", help="write cProfile stats here")
    args = ap.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    work = Path(tempfile.mkdtemp(prefix="reg-micro-"))
    site = Site(ip="127.0.0.6", port=args.port, uac_port=CLIENT[1], uas_port=5070, work=work)
    cfg = sipedge_config(site, auth=True, persist=False)
    sipedge_users(Path(tempfile.gettempdir()), site.realm, args.users, work / "state" / "users.db")
    asyncio.run(run(args, site, cfg))


if __name__ == "__main__":
    main()
