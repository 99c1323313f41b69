"""``sipedge user add|passwd|del|list`` through click's CliRunner."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sipedge.auth import SqliteCredentialStore
from sipedge.cli_user import user
from sipedge.sip.digest import compute_ha1


def stored_ha1(db: Path, username: str, realm: str, algorithm: str) -> str | None:
    cred = asyncio.run(SqliteCredentialStore(db).get(username, realm))
    return None if cred is None else cred.ha1[algorithm]


def test_add_list_passwd_del(tmp_path: Path) -> None:
    db = tmp_path / "users.db"
    runner = CliRunner()
    base = ["--db", str(db), "--realm", "example.com"]
    result = runner.invoke(user, ["add", *base, "--password", "pw1", "alice"])
    assert result.exit_code == 0, result.output
    assert "added alice" in result.output
    assert stored_ha1(db, "alice", "example.com", "MD5") == compute_ha1(
        "alice", "example.com", "pw1"
    )
    runner.invoke(user, ["add", "--db", str(db), "--realm", "b.example", "--password", "x", "bo"])

    result = runner.invoke(user, ["list", "--db", str(db)])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["USERNAME", "REALM", "ALGORITHMS"]
    assert [line.split() for line in lines[1:]] == [
        ["bo", "b.example", "SHA-256,MD5"],
        ["alice", "example.com", "SHA-256,MD5"],
    ]
    assert "pw1" not in result.output
    assert compute_ha1("alice", "example.com", "pw1") not in result.output

    result = runner.invoke(user, ["list", "--db", str(db), "--realm", "example.com", "--json"])
    assert json.loads(result.output) == [
        {"username": "alice", "realm": "example.com", "algorithms": ["SHA-256", "MD5"]}
    ]

    # password prompted twice, hidden
    result = runner.invoke(user, ["passwd", *base, "alice"], input="pw2\npw2\n")
    assert result.exit_code == 0, result.output
    assert "pw2" not in result.output
    assert stored_ha1(db, "alice", "example.com", "SHA-256") == compute_ha1(
        "alice", "example.com", "pw2", "SHA-256"
    )

    result = runner.invoke(user, ["del", *base, "alice"])
    assert result.exit_code == 0
    assert stored_ha1(db, "alice", "example.com", "MD5") is None


def test_errors_exit_1_with_one_line(tmp_path: Path) -> None:
    db = tmp_path / "users.db"
    runner = CliRunner()
    base = ["--db", str(db), "--realm", "example.com"]
    assert runner.invoke(user, ["add", *base, "--password", "pw", "alice"]).exit_code == 0
    cases = [
        (["add", *base, "--password", "pw", "alice"], "already exists"),
        (["passwd", *base, "--password", "pw", "bob"], "no user 'bob'"),
        (["del", *base, "bob"], "no user 'bob'"),
        (["add", *base, "--password", "", "carol"], "empty password"),
        (["list", "--db", str(tmp_path / "missing.db")], "does not exist"),
        (["del", "--db", str(tmp_path / "missing.db"), "--realm", "r", "x"], "does not exist"),
    ]
    for args, message in cases:
        result = runner.invoke(user, args)
        assert result.exit_code == 1, (args, result.output)
        assert len(result.output.strip().splitlines()) == 1
        assert message in result.output
    assert not (tmp_path / "missing.db").exists()


def test_password_confirmation_must_match(tmp_path: Path) -> None:
    db = tmp_path / "users.db"
    result = CliRunner().invoke(
        user, ["add", "--db", str(db), "--realm", "r", "alice"], input="one\ntwo\nok\nok\n"
    )
    assert result.exit_code == 0, result.output
    assert stored_ha1(db, "alice", "r", "MD5") == compute_ha1("alice", "r", "ok")


def test_missing_realm_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(user, ["add", "--db", str(tmp_path / "u.db"), "alice"])
    assert result.exit_code == 2
    assert "--realm" in result.output


def test_db_from_env_then_default_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    env_db = tmp_path / "env.db"
    args = ["add", "--realm", "r", "--password", "pw", "alice"]
    result = runner.invoke(user, args, env={"SIPEDGE_USERS_DB": str(env_db)})
    assert result.exit_code == 0
    assert stored_ha1(env_db, "alice", "r", "MD5") is not None
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(user, args, env={"SIPEDGE_USERS_DB": None})
    assert result.exit_code == 0
    assert stored_ha1(tmp_path / ".sipedge" / "users.db", "alice", "r", "MD5") is not None
