"""Per-AOR mutual exclusion: no Lock when uncontended, FIFO hand-over, cancellation, and
REGISTERs for one AOR that never interleave with a store that awaits."""

from __future__ import annotations

import asyncio

from reg_support import ALICE, FLOW, register

from sipedge.registrar import Binding, MemoryLocationStore, Registrar
from sipedge.registrar.location import _KeyedLocks


class Clock:
    def __call__(self) -> float:
        return 1_000_000.0


class CheckingStore(MemoryLocationStore):
    """A store that yields inside every call and fails the test if a second read-modify-
    write of one AOR starts before the first one's write is done."""

    def __init__(self) -> None:
        super().__init__()
        self.open: set[str] = set()
        self.log: list[tuple[str, str]] = []

    async def lookup(self, aor: str) -> list[Binding]:
        assert aor not in self.open, "two REGISTERs of one AOR interleaved"
        self.open.add(aor)
        self.log.append(("lookup", aor))
        for _ in range(3):
            await asyncio.sleep(0)
        return await super().lookup(aor)

    async def replace(self, aor: str, bindings: list[Binding]) -> None:
        await asyncio.sleep(0)
        await super().replace(aor, bindings)
        self.open.discard(aor)
        self.log.append(("replace", aor))


def test_an_uncontended_key_creates_no_lock() -> None:
    locks = _KeyedLocks()

    async def scenario() -> None:
        await locks.acquire("a")
        assert len(locks) == 1 and locks._slots["a"] is None  # held, no Lock object
        assert not locks.take("a")
        locks.release("a")
        assert len(locks) == 0
        assert locks.take("a")
        locks.release("a")
        assert len(locks) == 0

    asyncio.run(scenario())


def test_waiters_get_the_key_in_arrival_order() -> None:
    locks = _KeyedLocks()
    order: list[int] = []

    async def user(i: int) -> None:
        await locks.acquire("a")
        order.append(i)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        order.append(i)
        locks.release("a")

    async def scenario() -> None:
        await asyncio.gather(*(user(i) for i in range(4)), lock_made_check())

    async def lock_made_check() -> None:
        await asyncio.sleep(0)
        assert locks._slots["a"] is not None  # a Lock, made by the first one that waited

    asyncio.run(scenario())
    assert order == [0, 0, 1, 1, 2, 2, 3, 3]
    assert len(locks) == 0


def test_a_waiter_cancelled_while_waiting_does_not_keep_the_key() -> None:
    locks = _KeyedLocks()

    async def scenario() -> None:
        await locks.acquire("a")
        waiter = asyncio.ensure_future(locks.acquire("a"))
        await asyncio.sleep(0)
        waiter.cancel()
        await asyncio.sleep(0)
        assert waiter.cancelled()
        locks.release("a")
        assert len(locks) == 0
        await asyncio.wait_for(locks.acquire("a"), 1)  # free again
        locks.release("a")

    asyncio.run(scenario())


def test_a_waiter_cancelled_after_the_hand_over_passes_the_key_on() -> None:
    locks = _KeyedLocks()
    got: list[str] = []

    async def take(name: str) -> None:
        await locks.acquire("a")
        got.append(name)
        locks.release("a")

    async def scenario() -> None:
        await locks.acquire("a")
        first = asyncio.ensure_future(take("first"))
        second = asyncio.ensure_future(take("second"))
        await asyncio.sleep(0)
        locks.release("a")  # hands over to `first`, which has not run yet
        first.cancel()
        await asyncio.wait_for(second, 1)
        assert first.cancelled()

    asyncio.run(scenario())
    assert got == ["second"]
    assert len(locks) == 0


def test_registers_of_one_aor_never_interleave_with_an_awaiting_store() -> None:
    store = CheckingStore()
    reg = Registrar(store, clock=Clock())

    async def scenario() -> None:
        reqs = [register(f"<sip:alice@192.0.2.{i}>", call_id=f"c{i}") for i in range(4)]
        bob = register("<sip:bob@192.0.2.9>", to="sip:bob@example.com")
        outs = await asyncio.gather(
            *(reg.register(r, FLOW) for r in reqs),
            reg.register(bob, FLOW),
        )
        assert [o.status for o in outs] == [200] * 5
        (kept, *_) = await store.lookup(ALICE)
        store.open.clear()
        removed = await asyncio.gather(reg.remove_binding(kept), reg.register(reqs[0], FLOW))
        assert removed[0] is True
        assert await store.count() == 5  # alice's 4 (one removed, then added again), bob's
        assert len(reg._locks) == 0

    asyncio.run(scenario())
    alice = [op for op, aor in store.log if aor == ALICE]
    # strictly alternating read / write for alice; bob's REGISTER ran alongside
    assert alice[:8] == ["lookup", "replace"] * 4
    first_bob = store.log.index(("lookup", "sip:bob@example.com"))
    assert first_bob < store.log.index(("replace", ALICE))
