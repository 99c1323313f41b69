"""The fail2ban filter of the security guide against real sipedge ban lines.

The lines are written by sipedge's own code: :class:`MemoryBanList` logs
:func:`ban_line` through the text and JSON formatters of :mod:`sipedge.runtime.logs`
(with and without a Call-ID), as a file and as fail2ban's journal backend shows them.
Lines in which a peer controls the text that looks like a ban must not match. When
fail2ban is installed, ``fail2ban-regex`` and ``fail2ban-client -t`` check the files too.
"""

from __future__ import annotations

import configparser
import io
import logging
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from docs_support import EXAMPLES

from sipedge.runtime.logs import CALL_ID, configure_logging
from sipedge.security.bans import MemoryBanList, ban_line

FILTER = EXAMPLES / "fail2ban" / "filter.d" / "sipedge.conf"
JAIL = EXAMPLES / "fail2ban" / "jail.d" / "sipedge.local"
# fail2ban's <HOST>: an IPv4 or IPv6 address (or a name), captured.
HOST = r"(?P<host>[0-9A-Fa-f:.]+|[\w.-]+)"
BANNED = ["203.0.113.7", "2001:db8::5", "198.51.100.9"]
FORGED = ["192.0.2.99", "192.0.2.98"]


def failregexes() -> list[re.Pattern[str]]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(FILTER)
    raw = parser["Definition"]["failregex"].strip().splitlines()
    return [re.compile(line.strip().replace("<HOST>", HOST)) for line in raw if line.strip()]


def matches(line: str) -> str | None:
    """The host the filter takes from ``line`` (the date left in: the journal's view)."""
    for rx in failregexes():
        m = rx.search(line)
        if m is not None:
            return m["host"]
    return None


def logged_lines(fmt: str) -> list[str]:
    """Three bans (one while a message with a Call-ID is handled) and two lines a peer
    could shape, written by sipedge's logging in ``fmt`` (text or json)."""
    buf = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = configure_logging("info", fmt, buf)
    try:
        bans = MemoryBanList()
        bans.ban_now(BANNED[0], 300, "flood", 0.0)
        token = CALL_ID.set("a84b4c76e66710@pc33.example.com")
        bans.ban_now(BANNED[1], 900.4, "auth", 0.0)
        CALL_ID.reset(token)
        bans.ban_now(BANNED[2], 3600, "rule:ua-friendly-scanner", 0.0)
        peer = f"x WARNING sipedge.security {ban_line(FORGED[0], 'x', 1)}"
        logging.getLogger("sipedge.proxy").warning("dropped: User-Agent %r", peer)
        token = CALL_ID.set(f"1 {ban_line(FORGED[1], 'x', 1)}")
        logging.getLogger("sipedge.proxy").warning("something about a call")
        CALL_ID.reset(token)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    return buf.getvalue().splitlines()


def journal(lines: list[str]) -> list[str]:
    """The lines as fail2ban's systemd backend builds them: HOST IDENT[PID]: MESSAGE."""
    return [f"edge1 sipedge[4242]: {line}" for line in lines]


@pytest.fixture(params=["text", "json"])
def lines(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    yield logged_lines(request.param)


def test_the_ban_line_format_is_the_documented_one() -> None:
    assert ban_line("203.0.113.7", "flood", 300) == (
        "sipedge BAN ip=203.0.113.7 reason=flood seconds=300"
    )
    header = FILTER.read_text()
    assert "sipedge BAN ip=203.0.113.7 reason=flood seconds=300" in header


@pytest.mark.parametrize("view", ["file", "journal"])
def test_filter_takes_the_banned_addresses_and_nothing_else(lines: list[str], view: str) -> None:
    shown = journal(lines) if view == "journal" else lines
    assert len(shown) == 5, shown
    hosts = [matches(line) for line in shown]
    assert hosts == [*BANNED, None, None], "\n".join(shown)


def test_filter_ignores_unban_and_other_loggers() -> None:
    line = "2026-05-01T12:00:00.123Z WARNING sipedge.security sipedge UNBAN ip=203.0.113.7"
    assert matches(line) is None
    ban = "sipedge BAN ip=1.2.3.4 reason=x seconds=1"
    assert matches(f"2026-05-01T12:00:00.123Z WARNING sipedge.proxy {ban}") is None
    good = f"2026-05-01T12:00:00.123Z WARNING sipedge.security {ban}"
    assert matches(good) == "1.2.3.4"


@pytest.mark.skipif(shutil.which("fail2ban-regex") is None, reason="fail2ban not installed")
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_fail2ban_regex_agrees(fmt: str, tmp_path: Path) -> None:
    for view, shown in (("file", logged_lines(fmt)), ("journal", journal(logged_lines(fmt)))):
        log = tmp_path / f"{fmt}-{view}.log"
        log.write_text("\n".join(shown) + "\n")
        done = subprocess.run(
            ["fail2ban-regex", "-v", str(log), str(FILTER)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        out = done.stdout + done.stderr
        assert done.returncode == 0, out
        assert re.search(r"Lines: 5 lines, 0 ignored, 3 matched, 2 missed", out), out
        for ip in BANNED:
            assert ip in out, out


def test_jail_uses_the_filter_and_bans_at_the_first_line() -> None:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(JAIL)
    jail = parser["sipedge"]
    assert (jail["enabled"], jail["filter"], jail["maxretry"]) == ("true", "sipedge", "1")
    assert jail["backend"] == "systemd"
    f2b = configparser.ConfigParser(interpolation=None)
    f2b.read(FILTER)
    assert f2b["Definition"]["journalmatch"] == "_SYSTEMD_UNIT=sipedge.service"


@pytest.mark.skipif(
    shutil.which("fail2ban-client") is None or not Path("/etc/fail2ban/jail.conf").is_file(),
    reason="fail2ban not installed",
)
def test_fail2ban_accepts_the_jail(tmp_path: Path) -> None:
    conf = tmp_path / "fail2ban"
    shutil.copytree("/etc/fail2ban", conf)
    for sub in ("jail.d",):
        for old in (conf / sub).glob("*"):
            old.unlink()
    shutil.copy(FILTER, conf / "filter.d" / "sipedge.conf")
    shutil.copy(JAIL, conf / "jail.d" / "sipedge.local")
    done = subprocess.run(
        ["fail2ban-client", "-c", str(conf), "-d"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "['add', 'sipedge', 'systemd']" in done.stdout, done.stdout[-3000:]
    assert "'_SYSTEMD_UNIT=sipedge.service'" in done.stdout
