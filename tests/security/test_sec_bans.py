"""The memory ban list: expiry, extension, unban, bounds, the fail2ban line, drop cost."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from sipedge.security import Ban, BanList, MemoryBanList, ban_line, unban_line
from sipedge.security.bans import log_token

IP = "203.0.113.7"
# What an operator puts in a fail2ban filter (documented in sipedge.security.bans).
FAIL2BAN = re.compile(r"sipedge BAN ip=(?P<host>\S+) reason=\S+ seconds=\d+$")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_is_a_ban_list() -> None:
    assert isinstance(MemoryBanList(), BanList)


def test_ban_expires() -> None:
    bans = MemoryBanList(Clock())
    asyncio.run(bans.ban(IP, 300, "flood", now=10.0))
    assert bans.is_banned(IP, 10.0)
    assert bans.is_banned(IP, 309.999)
    assert not bans.is_banned(IP, 310.0)
    assert not bans.is_banned("203.0.113.8", 10.0)


def test_ban_uses_clock_without_now() -> None:
    clock = Clock()
    bans = MemoryBanList(clock)
    asyncio.run(bans.ban(IP, 60, "manual"))
    assert bans.is_banned(IP, clock.now + 59)
    assert not bans.is_banned(IP, clock.now + 60)


def test_longer_ban_extends_shorter_does_not_shorten() -> None:
    bans = MemoryBanList()
    bans.ban_now(IP, 100, "flood", 0.0)
    bans.ban_now(IP, 10, "auth", 50.0)  # would end at 60: ignored
    assert bans.is_banned(IP, 99.0)
    assert bans.list(50.0) == [Ban(IP, 100.0, "flood")]
    bans.ban_now(IP, 300, "auth", 50.0)
    assert bans.list(50.0) == [Ban(IP, 350.0, "auth")]
    assert bans.counters["bans.added"] == 1 and bans.counters["bans.extended"] == 1
    bans.ban_now(IP, 5, "again", 400.0)  # the old ban is over: a new one
    assert bans.counters["bans.added"] == 2


def test_unban() -> None:
    bans = MemoryBanList()
    bans.ban_now(IP, 100, "flood", 0.0)
    assert asyncio.run(bans.unban(IP)) is True
    assert not bans.is_banned(IP, 1.0)
    assert asyncio.run(bans.unban(IP)) is False
    assert bans.counters["bans.removed"] == 1


def test_list_sorted_and_swept() -> None:
    bans = MemoryBanList()
    bans.ban_now("a", 30, "r1", 0.0)
    bans.ban_now("b", 10, "r2", 0.0)
    bans.ban_now("c", 20, "r3", 0.0)
    assert [b.ip for b in bans.list(0.0)] == ["b", "c", "a"]
    assert [b.ip for b in bans.list(15.0)] == ["c", "a"]
    assert len(bans) == 2  # the expired one is gone


def test_bounded_entries_evict_expired_then_soonest() -> None:
    bans = MemoryBanList(max_entries=3)
    bans.ban_now("old", 1, "r", 0.0)
    bans.ban_now("long", 1000, "r", 0.0)
    bans.ban_now("short", 50, "r", 0.0)
    bans.ban_now("new1", 100, "r", 10.0)  # sweeps "old" (expired)
    assert {b.ip for b in bans.list(10.0)} == {"long", "short", "new1"}
    bans.ban_now("new2", 100, "r", 20.0)  # full of live bans: "short" ends soonest
    assert {b.ip for b in bans.list(20.0)} == {"long", "new1", "new2"}
    assert bans.counters["bans.evicted"] == 1


def test_ban_line_format_and_log(caplog: pytest.LogCaptureFixture) -> None:
    assert ban_line(IP, "flood", 300) == f"sipedge BAN ip={IP} reason=flood seconds=300"
    assert unban_line("2001:db8::1") == "sipedge UNBAN ip=2001:db8::1"
    caplog.set_level("WARNING", "sipedge.security")
    bans = MemoryBanList()
    bans.ban_now(IP, 300.0, "rule:ua-friendly-scanner", 0.0)
    bans.ban_now(IP, 100.0, "flood", 0.0)  # no change: not logged again
    asyncio.run(bans.unban(IP))
    assert caplog.messages == [
        f"sipedge BAN ip={IP} reason=rule:ua-friendly-scanner seconds=300",
        f"sipedge UNBAN ip={IP}",
    ]
    m = FAIL2BAN.match(caplog.messages[0])
    assert m is not None and m["host"] == IP


def test_log_tokens_cannot_forge_lines() -> None:
    line = ban_line(IP, "x\nsipedge BAN ip=192.0.2.1 reason=y seconds=1", 5)
    assert "\n" not in line and line.count(" ip=") == 1
    assert FAIL2BAN.match(line) is None or FAIL2BAN.match(line)["host"] == IP  # type: ignore[index]
    assert log_token("a b\r\nc\x00") == "a_b__c_"
    assert log_token("") == "-"


def test_drop_cost(capsys: pytest.CaptureFixture[str]) -> None:
    """Micro-benchmark of the pre-parse drop (printed, not asserted)."""
    bans = MemoryBanList()
    for i in range(10_000):
        bans.ban_now(f"10.{i // 256 % 256}.{i % 256}.1", 300, "flood", 0.0)
    probe = ["10.0.5.1", "192.0.2.1"]  # one banned, one not
    n = 200_000
    start = time.perf_counter()
    for i in range(n):
        bans.is_banned(probe[i & 1], 1.0)
    rate = n / (time.perf_counter() - start)
    with capsys.disabled():
        print(f"\n[bench] MemoryBanList.is_banned: {rate / 1e6:.1f} M checks/s (10k bans)")
    assert bans.is_banned("10.0.5.1", 1.0) and not bans.is_banned("192.0.2.1", 1.0)
