"""``sipedge user add|passwd|del|list``: manage the subscribers of the SQLite credential store.

The database is ``--db PATH``, else ``$SIPEDGE_USERS_DB``, else ``.sipedge/users.db``, which
is where the server looks by default (``users.db`` under ``server.state_dir``). Only
HA1 values are stored (one per algorithm); a running proxy picks changes up within about a
second. Exit status: 0 on success, 1 with a one-line ``Error: ...`` message on failure (click
keeps 2 for usage errors such as a missing ``--realm``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .auth.store import Credential, CredentialStoreError, SqliteCredentialStore

__all__ = ["DEFAULT_DB", "user"]

DEFAULT_DB = ".sipedge/users.db"
_T = TypeVar("_T")


def _db_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--db",
        "db",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="SIPEDGE_USERS_DB",
        default=DEFAULT_DB,
        show_default=True,
        help="Subscriber database (SQLite); env SIPEDGE_USERS_DB.",
    )(f)


def _realm_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--realm", required=True, help="Digest realm of the user.")(f)


def _password_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--password",
        prompt=True,
        hide_input=True,
        confirmation_prompt=True,
        help="The password (prompted twice, hidden, when not given).",
    )(f)


def _run(db: Path, action: Callable[[SqliteCredentialStore], Awaitable[_T]], create: bool) -> _T:
    """Open the store at ``db`` and run ``action``; errors become one-line exit-1 messages."""
    if not create and not db.exists():
        raise click.ClickException(f"user database {db} does not exist")

    async def go() -> _T:
        return await action(SqliteCredentialStore(db))

    try:
        return asyncio.run(go())
    except CredentialStoreError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group("user", context_settings={"help_option_names": ["-h", "--help"]})
def user() -> None:
    """Manage subscribers (Digest credentials, stored as HA1 only)."""


@user.command("add")
@_db_option
@_realm_option
@_password_option
@click.argument("username")
def user_add(db: Path, realm: str, password: str, username: str) -> None:
    """Add USERNAME to REALM."""
    cred = _run(db, lambda s: s.add(username, realm, password), create=True)
    click.echo(f"added {cred.username} in realm {cred.realm} ({', '.join(_ordered(cred))})")


@user.command("passwd")
@_db_option
@_realm_option
@_password_option
@click.argument("username")
def user_passwd(db: Path, realm: str, password: str, username: str) -> None:
    """Change the password of USERNAME in REALM."""
    cred = _run(db, lambda s: s.set_password(username, realm, password), create=False)
    click.echo(f"changed the password of {cred.username} in realm {cred.realm}")


@user.command("del")
@_db_option
@_realm_option
@click.argument("username")
def user_del(db: Path, realm: str, username: str) -> None:
    """Delete USERNAME from REALM."""
    _run(db, lambda s: s.delete(username, realm), create=False)
    click.echo(f"deleted {username} from realm {realm}")


@user.command("list")
@_db_option
@click.option("--realm", default=None, help="Only this realm (default: every realm).")
@click.option("--json", "as_json", is_flag=True, help="JSON array, for scripts.")
def user_list(db: Path, realm: str | None, as_json: bool) -> None:
    """List users: username, realm and stored algorithms (never the HA1 values)."""
    creds = _run(db, lambda s: s.list(realm), create=False)
    if as_json:
        rows = [
            {"username": c.username, "realm": c.realm, "algorithms": _ordered(c)} for c in creds
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    table = [("USERNAME", "REALM", "ALGORITHMS")]
    table += [(c.username, c.realm, _algorithms(c)) for c in creds]
    widths = [max(len(row[i]) for row in table) for i in range(2)]
    for name, rlm, algs in table:
        click.echo(f"{name:<{widths[0]}}  {rlm:<{widths[1]}}  {algs}")


def _algorithms(cred: Credential) -> str:
    return ",".join(_ordered(cred))


def _ordered(cred: Credential) -> list[str]:
    return sorted(cred.ha1, key=_preference)


def _preference(algorithm: str) -> tuple[int, str]:
    return (0 if algorithm == "SHA-256" else 1, algorithm)
