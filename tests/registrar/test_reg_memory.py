"""Bytes per binding at 100k bindings (Binding objects plus the store's dict and heap)."""

from __future__ import annotations

import asyncio
import gc
import sys
import tracemalloc

from sipedge.registrar import Binding, MemoryLocationStore

N = 100_000
LOCAL = ("192.0.2.1", 5060)
UA = "Yealink SIP-T46S 66.86.0.15"


def build(i: int, now: float) -> Binding:
    """One binding shaped as apply_register makes it: fresh strings per REGISTER, the
    AOR, transport, local address and User-Agent shared. (%-formatting and positional
    arguments keep temporary allocations, and so tracemalloc's overhead, low.)"""
    n = (i, i >> 16 & 255, i >> 8 & 255, i & 255)
    return Binding(
        sys.intern("sip:user%06d@example.com" % i),  # noqa: UP031 (aor)
        "sip:user%06d@10.%d.%d.%d:5060;transport=udp" % n,  # noqa: UP031 (contact)
        now + (3600 + i % 600),  # expires_at
        1.0,
        "%08x-1f3e-4c2a-9b7d-5e6f7a8b9c0d@10.%d.%d.%d" % n,  # noqa: UP031 (call_id)
        1000 + i,  # cseq
        None,
        None,
        (),
        "udp",
        LOCAL,
        ("10.%d.%d.%d" % n[1:], 5060 + i % 1000),  # noqa: UP031 (remote)
        None,
        UA,
        now,  # registered_at
    )


def test_bytes_per_binding() -> None:
    store = MemoryLocationStore()
    now = 1_700_000_000.0

    async def fill() -> None:
        for i in range(N):
            b = build(i, now)
            await store.replace(b.aor, [b])

    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        asyncio.run(fill())
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert asyncio.run(store.count()) == N
    per = (after - before) / N
    print(f"\n{per:.0f} bytes per binding at {N} bindings (one per AOR)")
    assert per < 3000
