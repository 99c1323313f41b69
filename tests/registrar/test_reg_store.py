"""MemoryLocationStore: atomic replace, heap expiry on time, SQLite write-through."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from sipedge.registrar import Binding, LocationStore, MemoryLocationStore, StoreError

T = TypeVar("T")
T0 = 1_000_000.0


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def b(aor: str, contact: str, expires_at: float, **kw: Any) -> Binding:
    return Binding(aor=aor, contact=contact, expires_at=expires_at, **kw)


A = "sip:alice@example.com"
B = "sip:bob@example.com"


def test_memory_store_satisfies_the_protocol() -> None:
    store: LocationStore = MemoryLocationStore()
    assert run(store.count()) == 0


def test_replace_lookup_count_aors() -> None:
    store = MemoryLocationStore()

    async def scenario() -> None:
        await store.replace(A, [b(A, "sip:a1@h", T0 + 60), b(A, "sip:a2@h", T0 + 60)])
        await store.replace(B, [b(B, "sip:b1@h", T0 + 60)])
        assert [x.contact for x in await store.lookup(A)] == ["sip:a1@h", "sip:a2@h"]
        assert (await store.count(), sorted(await store.aors())) == (3, [A, B])
        await store.replace(A, [b(A, "sip:a3@h", T0 + 60)])
        assert [x.contact for x in await store.lookup(A)] == ["sip:a3@h"]
        assert await store.count() == 2
        await store.replace(A, [])  # empty list deletes the AOR
        assert (await store.lookup(A), await store.aors(), await store.count()) == ([], [B], 1)
        assert await store.lookup("sip:nobody@example.com") == []

    run(scenario())


def test_lookup_returns_a_copy() -> None:
    store = MemoryLocationStore()

    async def scenario() -> None:
        await store.replace(A, [b(A, "sip:a1@h", T0 + 60)])
        (await store.lookup(A)).clear()
        assert len(await store.lookup(A)) == 1

    run(scenario())


def test_expire_removes_exactly_on_time() -> None:
    store = MemoryLocationStore()

    async def scenario() -> None:
        first = b(A, "sip:a1@h", T0 + 60)
        await store.replace(A, [first, b(A, "sip:a2@h", T0 + 120)])
        await store.replace(B, [b(B, "sip:b1@h", T0 + 90)])
        assert await store.expire(T0 + 59.999) == []
        assert await store.expire(T0 + 60) == [first]
        assert [x.contact for x in await store.lookup(A)] == ["sip:a2@h"]
        assert await store.count() == 2
        gone = await store.expire(T0 + 1000)
        assert sorted(x.contact for x in gone) == ["sip:a2@h", "sip:b1@h"]
        assert (await store.count(), await store.aors()) == (0, [])

    run(scenario())


def test_refreshed_binding_survives_its_old_expiry() -> None:
    store = MemoryLocationStore()

    async def scenario() -> None:
        await store.replace(A, [b(A, "sip:a1@h", T0 + 60)])
        refreshed = b(A, "sip:a1@h", T0 + 600)
        await store.replace(A, [refreshed])  # the old heap entry is now stale
        assert await store.expire(T0 + 60) == []
        assert await store.lookup(A) == [refreshed]
        assert await store.expire(T0 + 600) == [refreshed]

    run(scenario())


def test_removed_aor_leaves_only_stale_heap_entries() -> None:
    store = MemoryLocationStore()

    async def scenario() -> None:
        await store.replace(A, [b(A, "sip:a1@h", T0 + 60)])
        await store.replace(A, [])
        assert await store.expire(T0 + 60) == []
        assert await store.count() == 0

    run(scenario())


def test_heap_stays_bounded_under_refreshes() -> None:
    store = MemoryLocationStore()

    async def scenario() -> None:
        for i in range(5000):
            await store.replace(A, [b(A, "sip:a1@h", T0 + 3600 + i)])
        assert len(store._heap) <= 2 * await store.count() + 1024
        assert await store.expire(T0 + 3600 + 4998) == []
        assert len(await store.expire(T0 + 3600 + 4999)) == 1

    run(scenario())


# ------------------------------------------------------------------ persistence


def full(aor: str, contact: str, expires_at: float) -> Binding:
    return Binding(
        aor=aor,
        contact=contact,
        expires_at=expires_at,
        q=0.7,
        call_id="cid@ua",
        cseq=42,
        instance='"<urn:uuid:1>"',
        reg_id=1,
        path=("<sip:edge.example.net;lr>", "<sip:edge2.example.net;lr>"),
        transport="tcp",
        local=("192.0.2.1", 5060),
        remote=("2001:db8::7", 51000),
        conn_id=17,
        user_agent="TestPhone/1.0",
        registered_at=T0 - 5,
    )


def test_bindings_survive_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "state" / "location.db"
    store = MemoryLocationStore(db, clock=lambda: T0)
    keep = full(A, "sip:alice@[2001:db8::7]:51000;transport=tcp", T0 + 3600)
    plain = b(B, "sip:bob@198.51.100.9", T0 + 100)

    async def write() -> None:
        await store.replace(A, [keep])
        await store.replace(B, [plain])

    run(write())
    store.close()
    again = MemoryLocationStore(db, clock=lambda: T0 + 50)

    async def read() -> None:
        assert await again.lookup(A) == [keep]
        (back,) = await again.lookup(A)
        assert back.flow == keep.flow and back.path == keep.path
        assert back.received == "[2001:db8::7]:51000"
        assert await again.lookup(B) == [plain]
        assert await again.count() == 2
        assert await again.expire(T0 + 100) == [plain]  # the heap was rebuilt at load

    run(read())
    again.close()


def test_expired_bindings_are_dropped_at_load(tmp_path: Path) -> None:
    db = tmp_path / "location.db"
    store = MemoryLocationStore(db, clock=lambda: T0)
    run(store.replace(A, [b(A, "sip:a1@h", T0 + 60), b(A, "sip:a2@h", T0 + 600)]))
    store.close()
    again = MemoryLocationStore(db, clock=lambda: T0 + 60)
    assert [x.contact for x in run(again.lookup(A))] == ["sip:a2@h"]
    again.close()
    with sqlite3.connect(db) as conn:  # and deleted from the file
        assert conn.execute("SELECT COUNT(*) FROM bindings").fetchone() == (1,)


def test_replace_and_expire_write_through(tmp_path: Path) -> None:
    db = tmp_path / "location.db"
    store = MemoryLocationStore(db, clock=lambda: T0)

    def rows() -> list[tuple[str, str]]:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT aor, contact FROM bindings ORDER BY rowid").fetchall()

    async def scenario() -> None:
        await store.replace(A, [b(A, "sip:a1@h", T0 + 60), b(A, "sip:a2@h", T0 + 600)])
        await store.replace(B, [b(B, "sip:b1@h", T0 + 600)])
        assert len(rows()) == 3
        await store.replace(B, [])
        assert rows() == [(A, "sip:a1@h"), (A, "sip:a2@h")]
        await store.expire(T0 + 60)
        assert rows() == [(A, "sip:a2@h")]

    run(scenario())
    store.close()


def test_wal_mode(tmp_path: Path) -> None:
    db = tmp_path / "location.db"
    store = MemoryLocationStore(db)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    store.close()


def test_failed_write_leaves_memory_unchanged(tmp_path: Path) -> None:
    store = MemoryLocationStore(tmp_path / "location.db", clock=lambda: T0)
    first = b(A, "sip:a1@h", T0 + 60)
    run(store.replace(A, [first]))
    assert store._file is not None
    store._file.db.close()  # every later write fails
    with pytest.raises(StoreError):
        run(store.replace(A, [b(A, "sip:other@h", T0 + 60)]))
    assert run(store.lookup(A)) == [first]
    assert run(store.count()) == 1


def test_unopenable_file_raises_store_error(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(StoreError, match="cannot open"):
        MemoryLocationStore(tmp_path / "dir.db")


def test_persistent_replace_is_fast(tmp_path: Path) -> None:
    store = MemoryLocationStore(tmp_path / "location.db", clock=lambda: T0)
    n = 300

    async def scenario() -> float:
        start = time.perf_counter()
        for i in range(n):
            aor = f"sip:user{i}@example.com"
            await store.replace(aor, [full(aor, f"sip:u{i}@192.0.2.{i % 250}", T0 + 3600)])
        return (time.perf_counter() - start) / n

    per_write = run(scenario())
    store.close()
    print(f"persistent replace: {per_write * 1e6:.0f} us per REGISTER")
    assert per_write < 0.02


def test_nat_flag_survives_a_restart_and_old_files_gain_the_column(tmp_path: Path) -> None:
    db = tmp_path / "location.db"
    old = sqlite3.connect(str(db))  # a file written before the nat column existed
    old.execute(
        "CREATE TABLE bindings (aor TEXT NOT NULL, contact TEXT NOT NULL,"
        " expires_at REAL NOT NULL, q REAL NOT NULL, call_id TEXT NOT NULL,"
        " cseq INTEGER NOT NULL, instance TEXT, reg_id INTEGER, path TEXT,"
        " transport TEXT NOT NULL, local_ip TEXT NOT NULL, local_port INTEGER NOT NULL,"
        " remote_ip TEXT NOT NULL, remote_port INTEGER NOT NULL, conn_id INTEGER,"
        " user_agent TEXT, registered_at REAL NOT NULL)"
    )
    old.execute(
        "INSERT INTO bindings VALUES (?, 'sip:bob@198.51.100.9', ?, 1.0, 'c', 1, NULL, NULL,"
        " NULL, 'udp', '127.0.0.1', 5060, '198.51.100.9', 5060, NULL, NULL, ?)",
        (B, T0 + 100, T0),
    )
    old.commit()
    old.close()
    natted = b(A, "sip:alice@192.168.1.20:5060", T0 + 100, nat=True)
    store = MemoryLocationStore(db, clock=lambda: T0)
    (legacy,) = run(store.lookup(B))
    assert legacy.nat is False
    run(store.replace(A, [natted]))
    store.close()
    again = MemoryLocationStore(db, clock=lambda: T0)
    (back,) = run(again.lookup(A))
    assert back.nat is True and back.reached_by_flow
    again.close()
