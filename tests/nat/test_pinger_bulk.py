"""The NAT pinger reads every binding in one batch when the store can (Redis MGET)."""

from __future__ import annotations

import asyncio
from typing import Any

from sipedge.nat.keepalive import KeepaliveSettings
from sipedge.nat.pinger import NatPinger
from sipedge.registrar import Binding


class BulkStore:
    def __init__(self, bindings: list[Binding]) -> None:
        self.bindings = bindings
        self.bulk_calls = 0

    async def all_bindings(self) -> dict[str, list[Binding]]:
        self.bulk_calls += 1
        out: dict[str, list[Binding]] = {}
        for b in self.bindings:
            out.setdefault(b.aor, []).append(b)
        return out

    async def aors(self) -> list[str]:
        raise AssertionError("one lookup per AOR is what the bulk read avoids")

    async def lookup(self, aor: str) -> list[Binding]:
        raise AssertionError("one lookup per AOR is what the bulk read avoids")


def test_one_bulk_read_per_round() -> None:
    natted = [
        Binding(
            aor=f"sip:u{i}@example.org",
            contact=f"sip:u{i}@192.168.1.{i}:5060",
            expires_at=1e12,
            transport="udp",
            local=("127.0.0.1", 5060),
            remote=("198.51.100.1", 40000 + i),
            nat=True,
        )
        for i in range(3)
    ]
    store = BulkStore(natted)
    sent: list[Any] = []

    def send(data: bytes, flow: Any) -> bool:
        sent.append(flow.remote)
        return True

    async def remove(b: Binding) -> bool:
        return True

    pinger = NatPinger(
        store=store,  # type: ignore[arg-type]
        send=send,
        clock=lambda: 100.0,
        settings=KeepaliveSettings(),
        via_for=lambda flow: "127.0.0.1:5060",
        remove=remove,
    )
    asyncio.run(pinger.tick())
    assert store.bulk_calls == 1
    assert sorted(sent) == [("198.51.100.1", 40000 + i) for i in range(3)]
