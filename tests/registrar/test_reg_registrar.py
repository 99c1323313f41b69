"""Registrar: REGISTER through a store, per-AOR locking, targets for local AORs."""

from __future__ import annotations

import asyncio
from pathlib import Path

from reg_support import ALICE, FLOW, TCP_FLOW, contacts_of, register

from sipedge.registrar import (
    Binding,
    MemoryLocationStore,
    Registrar,
    RegistrarPolicy,
    StoreError,
)
from sipedge.sip.uri import parse_uri


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class YieldingStore(MemoryLocationStore):
    """A store that gives control away inside every call, like a networked backend."""

    async def lookup(self, aor: str) -> list[Binding]:
        found = await super().lookup(aor)
        for _ in range(3):
            await asyncio.sleep(0)
        return found

    async def replace(self, aor: str, bindings: list[Binding]) -> None:
        await asyncio.sleep(0)
        await super().replace(aor, bindings)


class FailingStore(MemoryLocationStore):
    async def replace(self, aor: str, bindings: list[Binding]) -> None:
        raise StoreError("disk full")


def test_register_then_targets_in_q_order() -> None:
    clock = Clock()
    reg = Registrar(MemoryLocationStore(), RegistrarPolicy(), clock)

    async def scenario() -> None:
        out = await reg.register(
            register("<sip:alice@192.0.2.1>;q=0.2", "<sip:alice@192.0.2.2>;q=0.9"), FLOW
        )
        assert out.status == 200 and len(contacts_of(out.headers)) == 2
        out = await reg.register(register("<sip:alice@192.0.2.3>", call_id="x"), TCP_FLOW)
        targets = await reg.targets(ALICE)
        assert [(str(t.uri), t.q) for t in targets] == [
            ("sip:alice@192.0.2.3", 1.0),
            ("sip:alice@192.0.2.2", 0.9),
            ("sip:alice@192.0.2.1", 0.2),
        ]
        assert all(t.dst is None and t.routes == () for t in targets)
        assert [b.flow for b in await reg.bindings(ALICE)] == [TCP_FLOW, FLOW, FLOW]
        assert await reg.targets("sip:nobody@example.com") == []

    asyncio.run(scenario())


def test_targets_carry_the_stored_path() -> None:
    reg = Registrar(MemoryLocationStore(), clock=Clock())
    req = register(
        "<sip:alice@10.0.0.5:5060>",
        extra=["Path: <sip:edge1.example.net;lr>, <sip:edge2.example.net:5070;lr>"],
    )

    async def scenario() -> None:
        assert (await reg.register(req, FLOW)).status == 200
        (t,) = await reg.targets(ALICE)
        assert t.uri is not None and str(t.uri) == "sip:alice@10.0.0.5:5060"
        assert t.dst is not None and str(t.dst) == "sip:edge1.example.net;lr"
        assert t.routes == ("<sip:edge1.example.net;lr>", "<sip:edge2.example.net:5070;lr>")

    asyncio.run(scenario())


def test_expired_bindings_give_no_target_and_expire_sweeps_them() -> None:
    clock = Clock()
    store = MemoryLocationStore()
    reg = Registrar(store, RegistrarPolicy(), clock)

    async def scenario() -> None:
        await reg.register(register("<sip:alice@192.0.2.1>", expires=60), FLOW)
        clock.now += 59.5
        assert len(await reg.targets(ALICE)) == 1
        clock.now += 0.5
        assert await reg.targets(ALICE) == []  # expired exactly at 60 s, not yet swept
        assert await store.count() == 1
        assert [b.contact for b in await reg.expire(clock.now)] == ["sip:alice@192.0.2.1"]
        assert await store.count() == 0

    asyncio.run(scenario())


def test_concurrent_registers_for_one_aor_do_not_interleave() -> None:
    store = YieldingStore()
    reg = Registrar(store, clock=Clock())

    async def scenario() -> None:
        reqs = [register(f"<sip:alice@192.0.2.{i}>", call_id=f"c{i}") for i in range(5)]
        outs = await asyncio.gather(*(reg.register(r, FLOW) for r in reqs))
        assert [o.status for o in outs] == [200] * 5
        # without the lock every lookup sees the empty AOR and the last replace wins
        assert await store.count() == 5
        assert len(reg._locks) == 0  # locks are dropped once unused

    asyncio.run(scenario())


def test_store_failure_gives_500() -> None:
    reg = Registrar(FailingStore(), clock=Clock())
    out = asyncio.run(reg.register(register("<sip:alice@192.0.2.1>"), FLOW))
    assert (out.status, out.bindings) == (500, None)


def test_bad_aor_is_answered_without_touching_the_store() -> None:
    reg = Registrar(FailingStore(), clock=Clock())
    out = asyncio.run(reg.register(register("<sip:a@h>", to="tel:+15551234"), FLOW))
    assert out.status == 416


def test_aor_of() -> None:
    assert Registrar.aor_of(parse_uri("sips:Bob@EXAMPLE.org:5061")) == "sip:Bob@example.org"


def test_registrations_survive_restart(tmp_path: Path) -> None:
    clock = Clock()
    db = tmp_path / "location.db"
    store = MemoryLocationStore(db, clock=clock)

    async def first_life() -> None:
        await Registrar(store, clock=clock).register(register("<sip:alice@192.0.2.1>"), TCP_FLOW)

    asyncio.run(first_life())
    store.close()
    clock.now += 10
    again = MemoryLocationStore(db, clock=clock)
    bindings = asyncio.run(Registrar(again, clock=clock).bindings(ALICE))
    assert [(b.contact, b.flow) for b in bindings] == [("sip:alice@192.0.2.1", TCP_FLOW)]
    again.close()
