"""Subscriber credentials: the :class:`CredentialStore` boundary and two implementations.

Only HA1 values are kept, ``H(username ":" realm ":" password)`` for each algorithm
(RFC 7616 §3.4.2, RFC 8760 §2.1), never the password: a stolen store does not give away the
passwords, and each HA1 is good for one realm only. Usernames and realms are case-sensitive
(both are hashed into HA1 as written).

:class:`SqliteCredentialStore` serves :meth:`~SqliteCredentialStore.get` from a dict loaded at
open. ``get`` looks at the file at most once per ``check_interval`` of the injected clock, and
then only in a worker thread: when the file changed (``sipedge user add`` run by another
process) the dict is rebuilt there and swapped in, so ``get`` itself never touches the disk.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..sip.digest import compute_ha1

log = logging.getLogger("sipedge.auth")

__all__ = [
    "STORED_ALGORITHMS",
    "Credential",
    "CredentialStore",
    "CredentialStoreError",
    "MemoryCredentialStore",
    "SqliteCredentialStore",
    "UnknownUser",
    "UserExists",
]

# One HA1 per algorithm: the "-sess" variants are derived from these (RFC 7616 §3.4.2).
STORED_ALGORITHMS: tuple[str, ...] = ("SHA-256", "MD5")


class CredentialStoreError(Exception):
    """A management operation failed: bad argument or unusable backing storage."""


class UserExists(CredentialStoreError):
    """``add`` for a (username, realm) pair that is already stored."""


class UnknownUser(CredentialStoreError):
    """``set_password`` or ``delete`` for a (username, realm) pair that is not stored."""


@dataclass(frozen=True, slots=True)
class Credential:
    """One subscriber of one realm: its HA1 per algorithm name (``"MD5"``, ``"SHA-256"``)."""

    username: str
    realm: str
    ha1: dict[str, str]

    @classmethod
    def from_password(
        cls,
        username: str,
        realm: str,
        password: str,
        algorithms: Iterable[str] = STORED_ALGORITHMS,
    ) -> Credential:
        """Hash ``password`` once per algorithm; the password itself is not kept."""
        _check_names(username, realm)
        if not password:
            raise CredentialStoreError("empty password")
        return cls(
            username, realm, {a: compute_ha1(username, realm, password, a) for a in algorithms}
        )


def _check_names(username: str, realm: str) -> None:
    """Refuse what could not be written in a Digest quoted-string (RFC 7616 §3.4)."""
    for what, value in (("username", username), ("realm", realm)):
        if not value:
            raise CredentialStoreError(f"empty {what}")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            raise CredentialStoreError(f"control character in {what} {value!r}")


class CredentialStore(Protocol):
    """Where subscribers live (ARCHITECTURE.md §4.9); async so a shared backend fits."""

    async def get(self, username: str, realm: str) -> Credential | None:
        """The stored credential, or None. Hot path: must not wait on disk or network."""
        ...

    async def add(self, username: str, realm: str, password: str) -> Credential:
        """Store a new subscriber (its HA1s only); :class:`UserExists` if already there."""
        ...

    async def set_password(self, username: str, realm: str, password: str) -> Credential:
        """Replace the HA1s of a subscriber; :class:`UnknownUser` if not stored."""
        ...

    async def delete(self, username: str, realm: str) -> None:
        """Remove a subscriber; :class:`UnknownUser` if not stored."""
        ...

    async def list(self, realm: str | None = None) -> builtins.list[Credential]:
        """Every subscriber (of ``realm`` when given), sorted by realm then username."""
        ...


def _sorted(creds: Iterable[Credential], realm: str | None) -> builtins.list[Credential]:
    chosen = [c for c in creds if realm is None or c.realm == realm]
    return sorted(chosen, key=lambda c: (c.realm, c.username))


class MemoryCredentialStore:
    """Credentials in a dict: for tests and for embedding sipedge in another program."""

    def __init__(self, credentials: Iterable[Credential] = ()) -> None:
        self._data = {(c.username, c.realm): c for c in credentials}

    async def get(self, username: str, realm: str) -> Credential | None:
        """The stored credential, or None."""
        return self._data.get((username, realm))

    async def add(self, username: str, realm: str, password: str) -> Credential:
        """Store a new subscriber; :class:`UserExists` if already there."""
        cred = Credential.from_password(username, realm, password)
        if (username, realm) in self._data:
            raise UserExists(f"user {username!r} already exists in realm {realm!r}")
        self._data[username, realm] = cred
        return cred

    async def set_password(self, username: str, realm: str, password: str) -> Credential:
        """Replace the HA1s of a subscriber; :class:`UnknownUser` if not stored."""
        cred = Credential.from_password(username, realm, password)
        if (username, realm) not in self._data:
            raise UnknownUser(f"no user {username!r} in realm {realm!r}")
        self._data[username, realm] = cred
        return cred

    async def delete(self, username: str, realm: str) -> None:
        """Remove a subscriber; :class:`UnknownUser` if not stored."""
        if self._data.pop((username, realm), None) is None:
            raise UnknownUser(f"no user {username!r} in realm {realm!r}")

    async def list(self, realm: str | None = None) -> builtins.list[Credential]:
        """Every subscriber (of ``realm`` when given), sorted by realm then username."""
        return _sorted(self._data.values(), realm)


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS credentials ("
    " username TEXT NOT NULL, realm TEXT NOT NULL, algorithm TEXT NOT NULL,"
    " ha1 TEXT NOT NULL, PRIMARY KEY (username, realm, algorithm))",
    "PRAGMA user_version = 1",
)
_Key = tuple[str, str]
_Signature = tuple[object, ...]
_Stmt = tuple[str, tuple[str, ...]]


def _file_signature(path: Path) -> _Signature:
    """What changes when another process commits: stat of the file and of its WAL, and the
    header's file change counter (bytes 24-27, bumped by every rollback-journal commit), so
    a change within one tick of a coarse mtime is still seen."""
    parts: builtins.list[object] = []
    for p in (path, path.with_name(path.name + "-wal")):
        try:
            st = p.stat()
        except OSError:
            parts.append(None)
            continue
        parts.append((st.st_ino, st.st_size, st.st_mtime_ns))
    try:
        with path.open("rb") as f:
            parts.append(f.read(28)[24:])
    except OSError:
        parts.append(None)
    return tuple(parts)


class SqliteCredentialStore:
    """Credentials in an SQLite file (standard library), served from an in-memory copy.

    The file and its schema are created on open if missing and the whole table is loaded
    then; raises :class:`CredentialStoreError` when that fails. ``clock`` (monotonic
    seconds) paces the change check done by ``get``: at most one per ``check_interval``.
    Management methods write through to the file and update the copy at once.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        clock: Callable[[], float] = time.monotonic,
        check_interval: float = 1.0,
        timeout: float = 5.0,
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self._interval = check_interval
        self._timeout = timeout
        self._task: asyncio.Task[bool] | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # HA1s open their realm to whoever reads them: owner-only from the start (an
            # empty file is an empty database; SQLite gives its journal the same mode).
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
            db = self._connect(create=True)
            try:
                for stmt in _SCHEMA:
                    db.execute(stmt)
            finally:
                db.close()
        except (OSError, sqlite3.Error) as exc:
            raise CredentialStoreError(f"cannot open credential store {self.path}: {exc}") from exc
        self._signature, self._cache = self._load()
        self._checked_at = clock()

    # --------------------------------------------------------------- hot path
    async def get(self, username: str, realm: str) -> Credential | None:
        """The cached credential, or None; may start a background change check."""
        now = self._clock()
        if now - self._checked_at >= self._interval and self._task is None:
            self._checked_at = now
            self._task = asyncio.get_running_loop().create_task(self.refresh())
            self._task.add_done_callback(self._refresh_done)
        return self._cache.get((username, realm))

    def _refresh_done(self, task: asyncio.Task[bool]) -> None:
        self._task = None
        exc = None if task.cancelled() else task.exception()
        if exc is not None:  # the old copy stays in use; the next check retries
            log.warning("credential store reload failed: %s", exc)

    async def refresh(self) -> bool:
        """Check the file now (in a worker thread); reload it if it changed. True if reloaded.

        Raises :class:`CredentialStoreError` when the changed file cannot be read; the
        copy in memory is then kept.
        """
        loaded = await asyncio.to_thread(self._load_if_changed, self._signature)
        if loaded is None:
            return False
        self._signature, self._cache = loaded
        return True

    async def wait_refreshed(self) -> None:
        """Wait for a change check started by ``get`` (tests; orderly shutdown)."""
        task = self._task
        if task is not None:
            await asyncio.wait([task])

    # --------------------------------------------------------------- file access
    def _connect(self, *, create: bool = False) -> sqlite3.Connection:
        # One short-lived connection per operation: worker threads differ between calls.
        # Only the constructor may create the file; a vanished file is an error, not empty.
        uri = self.path.resolve().as_uri() + ("?mode=rwc" if create else "?mode=rw")
        return sqlite3.connect(uri, uri=True, timeout=self._timeout, isolation_level=None)

    def _load(self) -> tuple[_Signature, dict[_Key, Credential]]:
        # The signature is taken before reading: a commit racing the read changes it again,
        # so the next check reloads.
        signature = _file_signature(self.path)
        ha1s: dict[_Key, dict[str, str]] = {}
        try:
            db = self._connect()
            try:
                rows = db.execute(
                    "SELECT username, realm, algorithm, ha1 FROM credentials ORDER BY rowid"
                )
                for username, realm, algorithm, ha1 in rows:
                    ha1s.setdefault((username, realm), {})[algorithm] = ha1
            finally:
                db.close()
        except sqlite3.Error as exc:
            raise CredentialStoreError(f"cannot read credential store {self.path}: {exc}") from exc
        return signature, {key: Credential(key[0], key[1], h) for key, h in ha1s.items()}

    def _load_if_changed(
        self, known: _Signature
    ) -> tuple[_Signature, dict[_Key, Credential]] | None:
        if _file_signature(self.path) == known:
            return None
        return self._load()

    def _write(self, key: _Key, statements: builtins.list[_Stmt], *, must_touch: bool) -> None:
        """Run ``statements`` in one transaction. With ``must_touch``, roll back and raise
        :class:`UnknownUser` when the first one changes no row."""
        where = f"{key[0]!r} in realm {key[1]!r}"
        try:
            db = self._connect()
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    touched = db.execute(*statements[0]).rowcount
                    if must_touch and touched == 0:
                        raise UnknownUser(f"no user {where}")
                    for sql, params in statements[1:]:
                        db.execute(sql, params)
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            finally:
                db.close()
        except sqlite3.IntegrityError as exc:
            raise UserExists(f"user {where} already exists") from exc
        except sqlite3.Error as exc:
            raise CredentialStoreError(f"credential store {self.path}: {exc}") from exc

    # --------------------------------------------------------------- management
    async def add(self, username: str, realm: str, password: str) -> Credential:
        """Store a new subscriber; :class:`UserExists` if already there."""
        cred = Credential.from_password(username, realm, password)
        key = (username, realm)
        await asyncio.to_thread(self._write, key, _inserts(cred), must_touch=False)
        self._cache[key] = cred
        return cred

    async def set_password(self, username: str, realm: str, password: str) -> Credential:
        """Replace the HA1s of a subscriber; :class:`UnknownUser` if not stored."""
        cred = Credential.from_password(username, realm, password)
        key = (username, realm)
        statements = [(_DELETE, key), *_inserts(cred)]
        await asyncio.to_thread(self._write, key, statements, must_touch=True)
        self._cache[key] = cred
        return cred

    async def delete(self, username: str, realm: str) -> None:
        """Remove a subscriber; :class:`UnknownUser` if not stored."""
        key = (username, realm)
        await asyncio.to_thread(self._write, key, [(_DELETE, key)], must_touch=True)
        self._cache.pop(key, None)

    async def list(self, realm: str | None = None) -> builtins.list[Credential]:
        """Every subscriber (of ``realm`` when given), read from the file now."""
        _, creds = await asyncio.to_thread(self._load)
        return _sorted(creds.values(), realm)


_DELETE = "DELETE FROM credentials WHERE username = ? AND realm = ?"
_INSERT = "INSERT INTO credentials (username, realm, algorithm, ha1) VALUES (?, ?, ?, ?)"


def _inserts(cred: Credential) -> builtins.list[_Stmt]:
    return [(_INSERT, (cred.username, cred.realm, alg, ha1)) for alg, ha1 in cred.ha1.items()]
