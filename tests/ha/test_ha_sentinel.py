"""Redis Sentinel: the master is found through a real sentinel (redis-server --sentinel)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ha_support import HOST, RedisServer, binding, free_port

from sipedge.config.ha import HaConfig
from sipedge.ha.client import connect
from sipedge.ha.location import RedisLocationStore

A = "sip:alice@example.com"


@pytest.fixture
def sentinel(redis_server: RedisServer, tmp_path: Path) -> Iterator[int]:
    port = free_port()
    conf = tmp_path / "sentinel.conf"  # sentinel rewrites its file: keep it writable
    conf.write_text(
        f"port {port}\nbind {HOST}\ndaemonize no\ndir {tmp_path}\n"
        f"sentinel monitor edge {HOST} {redis_server.port} 1\n"
        "sentinel down-after-milliseconds edge 2000\n"
    )
    with (tmp_path / "sentinel.log").open("wb") as log:
        proc = subprocess.Popen(
            [redis_server.exe, str(conf), "--sentinel"], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        probe = RedisServer(tmp_path / "probe", port)
        deadline = time.monotonic() + 5
        while not probe.ping():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.skip(f"redis-server --sentinel did not start: {conf.read_text()}")
            time.sleep(0.02)
        yield port
    finally:
        proc.kill()
        proc.wait(timeout=5)


def test_store_through_a_sentinel(sentinel: int, prefix: str) -> None:
    async def scenario() -> None:
        cfg = HaConfig(
            backend="redis",
            sentinels=(f"{HOST}:{sentinel}",),
            sentinel_master="edge",
            key_prefix=prefix,
        )
        lk = connect(cfg)
        try:
            store = RedisLocationStore(lk)
            b = binding(A, "sip:alice@h", time.time() + 60)
            await store.replace(A, [b])
            assert await store.lookup(A) == [b]
        finally:
            await lk.close()

    asyncio.run(scenario())
