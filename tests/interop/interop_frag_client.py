"""Run inside the client namespace: ping, then offer/query/delete a multi-stream call on each
node given, and print one JSON object per node (a list) on stdout.

    python interop_frag_client.py [--wait S] [--timeout T] [--streams N] NODE...

``--wait`` first pings the first node until it answers (the daemon is starting). Each
result holds ``ping``/``offer``/``query``/``delete``: ``{"ok": bool, "ms": float,
"bytes": int}`` on success, ``{"ok": false, "error": "RelayTimeout"}`` on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import time
from collections.abc import Awaitable, Callable

from sipedge.media import RelayConfig, RelayError, RtpEngine
from sipedge.media.bencode import Decoded, encode
from sipedge.media.doctor import probe_sdp

Step = dict[str, object]


async def _step(call: Callable[[], Awaitable[dict[str, Decoded]]]) -> Step:
    start = time.perf_counter()
    try:
        reply = await call()
    except RelayError as exc:
        return {"ok": False, "error": type(exc).__name__}
    ms = (time.perf_counter() - start) * 1000
    return {"ok": True, "ms": round(ms, 3), "bytes": len(encode(reply))}


def _relay(node: str, timeout: float) -> RtpEngine:
    config = RelayConfig(
        sets={"default": [node]},
        timeout=timeout,
        retransmit=timeout / 2,
        disable_time=0.0,
        ping_interval=0.0,
        delete_retries=0,
    )
    return RtpEngine(config)


async def _wait(node: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    async with _relay(node, 0.2) as relay:
        while True:
            try:
                await relay.ping(node)
                return
            except RelayError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)


async def _node(node: str, timeout: float, streams: int) -> Step:
    call_id, tag = f"frag-{secrets.token_hex(6)}", "frag-client"
    async with _relay(node, timeout) as relay:
        result: Step = {"node": node, "ping": await _step(lambda: relay.ping(node))}
        result["offer"] = await _step(lambda: relay.offer(call_id, tag, probe_sdp(streams)))
        result["query"] = await _step(lambda: relay.query(call_id, tag))
        result["delete"] = await _step(lambda: relay.delete(call_id, tag, delay=0, retry=False))
        return result


async def _main(args: argparse.Namespace) -> list[Step]:
    if args.wait:
        await _wait(args.nodes[0], args.wait)
    return list(await asyncio.gather(*(_node(n, args.timeout, args.streams) for n in args.nodes)))


def main() -> None:
    """Parse the command line, run every node concurrently, print the JSON list."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--wait", type=float, default=0.0)
    parser.add_argument("--timeout", type=float, default=0.8)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("nodes", nargs="+")
    print(json.dumps(asyncio.run(_main(parser.parse_args()))))


if __name__ == "__main__":
    main()
