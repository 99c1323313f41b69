"""Credential stores: HA1 only, management operations, SQLite reload on file change."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from auth_support import ManualClock

from sipedge.auth import (
    Credential,
    CredentialStoreError,
    MemoryCredentialStore,
    SqliteCredentialStore,
    UnknownUser,
    UserExists,
)
from sipedge.sip.digest import compute_ha1

T = TypeVar("T")
PLAIN = "Plaintext-Password-4711"
NEW_PLAIN = "Another-Plaintext-0815"


def run(coro: Awaitable[T]) -> T:
    async def go() -> T:
        return await coro

    return asyncio.run(go())


StoreFactory = Callable[[Path], MemoryCredentialStore | SqliteCredentialStore]


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request: pytest.FixtureRequest) -> StoreFactory:
    if request.param == "memory":
        return lambda _: MemoryCredentialStore()
    return lambda tmp: SqliteCredentialStore(tmp / "users.db", clock=ManualClock())


def test_add_get_stores_ha1_per_algorithm(make_store: StoreFactory, tmp_path: Path) -> None:
    store = make_store(tmp_path)
    added = run(store.add("alice", "example.com", PLAIN))
    got = run(store.get("alice", "example.com"))
    assert got == added
    assert got is not None
    assert got.ha1 == {
        "SHA-256": compute_ha1("alice", "example.com", PLAIN, "SHA-256"),
        "MD5": compute_ha1("alice", "example.com", PLAIN, "MD5"),
    }
    assert PLAIN not in repr(got)
    assert run(store.get("alice", "other.example")) is None
    assert run(store.get("Alice", "example.com")) is None  # usernames are case-sensitive


def test_add_twice_raises_user_exists(make_store: StoreFactory, tmp_path: Path) -> None:
    store = make_store(tmp_path)
    run(store.add("alice", "example.com", PLAIN))
    with pytest.raises(UserExists, match="alice"):
        run(store.add("alice", "example.com", NEW_PLAIN))
    cred = run(store.get("alice", "example.com"))
    assert cred is not None
    assert cred.ha1["MD5"] == compute_ha1("alice", "example.com", PLAIN)
    run(store.add("alice", "other.example", PLAIN))  # same name, other realm: fine


def test_set_password_replaces_ha1(make_store: StoreFactory, tmp_path: Path) -> None:
    store = make_store(tmp_path)
    run(store.add("alice", "example.com", PLAIN))
    run(store.set_password("alice", "example.com", NEW_PLAIN))
    cred = run(store.get("alice", "example.com"))
    assert cred is not None
    assert cred.ha1["SHA-256"] == compute_ha1("alice", "example.com", NEW_PLAIN, "SHA-256")
    with pytest.raises(UnknownUser):
        run(store.set_password("bob", "example.com", NEW_PLAIN))
    assert run(store.get("bob", "example.com")) is None


def test_delete(make_store: StoreFactory, tmp_path: Path) -> None:
    store = make_store(tmp_path)
    run(store.add("alice", "example.com", PLAIN))
    run(store.add("bob", "example.com", PLAIN))
    run(store.delete("alice", "example.com"))
    assert run(store.get("alice", "example.com")) is None
    assert run(store.get("bob", "example.com")) is not None
    with pytest.raises(UnknownUser):
        run(store.delete("alice", "example.com"))


def test_list_sorted_and_filtered(make_store: StoreFactory, tmp_path: Path) -> None:
    store = make_store(tmp_path)
    for user, realm in [("zed", "a.example"), ("bob", "b.example"), ("amy", "b.example")]:
        run(store.add(user, realm, PLAIN))
    everyone = run(store.list())
    assert [(c.username, c.realm) for c in everyone] == [
        ("zed", "a.example"),
        ("amy", "b.example"),
        ("bob", "b.example"),
    ]
    assert [c.username for c in run(store.list("b.example"))] == ["amy", "bob"]
    assert run(store.list("nowhere")) == []


@pytest.mark.parametrize(
    ("username", "realm", "password"),
    [("", "r", "p"), ("u", "", "p"), ("u", "r", ""), ("a\r\nb", "r", "p"), ("u", "r\x00", "p")],
)
def test_bad_arguments_refused(
    make_store: StoreFactory, tmp_path: Path, username: str, realm: str, password: str
) -> None:
    store = make_store(tmp_path)
    with pytest.raises(CredentialStoreError):
        run(store.add(username, realm, password))
    assert run(store.list()) == []


def test_memory_store_seeded_with_credentials() -> None:
    cred = Credential.from_password("alice", "example.com", PLAIN, ["MD5"])
    store = MemoryCredentialStore([cred])
    assert run(store.get("alice", "example.com")) == cred
    assert set(cred.ha1) == {"MD5"}


def test_sqlite_file_holds_no_plaintext(tmp_path: Path) -> None:
    store = SqliteCredentialStore(tmp_path / "users.db")
    run(store.add("alice", "example.com", PLAIN))
    run(store.set_password("alice", "example.com", NEW_PLAIN))
    run(store.add("bob", "example.com", PLAIN))
    files = list(tmp_path.iterdir())
    assert tmp_path / "users.db" in files
    for f in files:
        data = f.read_bytes()
        for secret in (PLAIN, NEW_PLAIN):
            assert secret.encode() not in data
            assert secret.encode("utf-16-le") not in data
    data = (tmp_path / "users.db").read_bytes()
    assert compute_ha1("alice", "example.com", NEW_PLAIN, "SHA-256").encode() in data


def test_sqlite_file_is_owner_only(tmp_path: Path) -> None:
    SqliteCredentialStore(tmp_path / "sub" / "users.db")
    mode = stat.S_IMODE((tmp_path / "sub" / "users.db").stat().st_mode)
    assert mode == 0o600


def test_sqlite_persists_across_opens(tmp_path: Path) -> None:
    run(SqliteCredentialStore(tmp_path / "users.db").add("alice", "example.com", PLAIN))
    again = SqliteCredentialStore(tmp_path / "users.db")
    cred = run(again.get("alice", "example.com"))
    assert cred is not None
    assert cred.ha1["MD5"] == compute_ha1("alice", "example.com", PLAIN, "MD5")


def _foreign_insert(path: Path, username: str) -> None:
    """Another connection (as ``sipedge user add`` in another process) adds a user."""
    db = sqlite3.connect(path)
    with db:
        for alg in ("SHA-256", "MD5"):
            db.execute(
                "INSERT INTO credentials (username, realm, algorithm, ha1) VALUES (?, ?, ?, ?)",
                (username, "example.com", alg, compute_ha1(username, "example.com", PLAIN, alg)),
            )
    db.close()


def test_get_reloads_after_another_connection_writes(tmp_path: Path) -> None:
    path = tmp_path / "users.db"
    clock = ManualClock(100.0)
    store = SqliteCredentialStore(path, clock=clock)

    async def scenario() -> None:
        _foreign_insert(path, "carol")
        assert await store.get("carol", "example.com") is None  # served from the cache
        clock.now += 0.5  # less than a second: no check yet
        assert await store.get("carol", "example.com") is None
        await store.wait_refreshed()
        assert await store.get("carol", "example.com") is None
        clock.now += 0.6  # a second since the last check: get starts one in the background
        assert await store.get("carol", "example.com") is None
        await store.wait_refreshed()
        cred = await store.get("carol", "example.com")
        assert cred is not None
        assert cred.ha1["MD5"] == compute_ha1("carol", "example.com", PLAIN)

    asyncio.run(scenario())


def test_refresh_sees_deletion_and_reports_change(tmp_path: Path) -> None:
    path = tmp_path / "users.db"
    store = SqliteCredentialStore(path)
    other = SqliteCredentialStore(path)
    run(store.add("alice", "example.com", PLAIN))
    assert run(store.refresh()) is True  # our own write changed the file too
    assert run(store.refresh()) is False  # nothing changed since
    run(other.delete("alice", "example.com"))
    assert run(store.get("alice", "example.com")) is not None
    assert run(store.refresh()) is True
    assert run(store.get("alice", "example.com")) is None


def test_vanished_file_keeps_cache(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "users.db"
    clock = ManualClock(0.0)
    store = SqliteCredentialStore(path, clock=clock)
    run(store.add("alice", "example.com", PLAIN))
    path.unlink()
    with pytest.raises(CredentialStoreError):
        run(store.refresh())
    assert not path.exists()  # a reload never creates an empty database

    async def via_get() -> None:
        clock.now += 5
        await store.get("alice", "example.com")
        await store.wait_refreshed()

    with caplog.at_level(logging.WARNING, "sipedge.auth"):
        asyncio.run(via_get())
    assert "reload failed" in caplog.text
    assert run(store.get("alice", "example.com")) is not None


def test_unopenable_path_raises_store_error(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(CredentialStoreError, match="cannot open"):
        SqliteCredentialStore(tmp_path / "dir.db")
