"""The Security facade: rules + flood + bans for requests, auth-failure bans, fraud, spawning."""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest
from sec_support import PROXY_IP, SCANNER, SENDER, make_request, svcrack, svmap

from sipedge.auth import Authenticator, Credential, MemoryCredentialStore
from sipedge.security import (
    AccountLimits,
    Action,
    AuthFailSettings,
    Ban,
    FloodSettings,
    FraudSettings,
    MemoryBanList,
    Security,
    SecurityConfig,
)
from sipedge.sip.errors import ProtocolError

PROXY = (PROXY_IP,)


def check(sec: Security, req: Any, ip: str = SENDER, now: float = 0.0, **kw: Any) -> Any:
    return sec.check_request(req, ip, now, proxy_ips=PROXY, **kw)


def test_legitimate_request_accepted() -> None:
    sec = Security()
    v = check(sec, make_request())
    assert v.action is Action.ACCEPT and not v.blocked
    assert sec.counters()["security.checked"] == 1


def test_scanner_banned_then_dropped_before_rules(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", "sipedge.security")
    sec = Security()
    v = check(sec, svmap(), SCANNER, 10.0)
    assert (v.action, v.rule, v.ban_seconds) == (Action.BAN, "ua-friendly-scanner", 3600.0)
    assert sec.is_banned(SCANNER, 11.0)
    assert not sec.is_banned(SCANNER, 3610.0)
    v2 = check(sec, make_request(), SCANNER, 20.0)  # anything from it is dropped now
    assert (v2.action, v2.rule) == (Action.DROP, "banned")
    c = sec.counters()
    assert c["security.ban"] == 1 and c["security.banned_drop"] == 1
    assert c["rule.ua-friendly-scanner"] == 1 and c["bans.added"] == 1
    assert f"sipedge BAN ip={SCANNER} reason=rule:ua-friendly-scanner seconds=3600" in (
        caplog.messages
    )


def test_drop_rule_does_not_ban() -> None:
    sec = Security()
    v = check(sec, make_request(ua="SIP Call"), SCANNER)
    assert (v.action, v.rule) == (Action.DROP, "ua-sip-call")
    assert not sec.is_banned(SCANNER, 1.0)


def test_flood_bans_the_source() -> None:
    sec = Security(SecurityConfig(flood=FloodSettings(reqs_density_per_unit=5, ban_seconds=60)))
    req = make_request()
    assert [check(sec, req, now=0.1).action for _ in range(5)] == [Action.ACCEPT] * 5
    v = check(sec, req, now=0.2)
    assert (v.action, v.rule, v.ban_seconds) == (Action.BAN, "flood", 60.0)
    assert v.detail == "over 5 requests per 2 s"
    assert sec.is_banned(SENDER, 59.0) and not sec.is_banned(SENDER, 60.3)
    assert check(sec, req, now=61.0).action is Action.ACCEPT  # counts start afresh
    assert sec.counters()["security.flood"] == 1


def test_trusted_source_never_counted_nor_banned() -> None:
    sec = Security(SecurityConfig(flood=FloodSettings(reqs_density_per_unit=2)))
    for _ in range(50):
        assert check(sec, svmap(), SENDER, trusted=True).action is Action.ACCEPT
    assert not sec.is_banned(SENDER, 1.0)
    assert sec.counters()["flood.sources"] == 0
    assert sec.auth_failed(SENDER, "alice", 0.0, trusted=True).action is Action.ACCEPT


def test_trusted_source_with_check_trusted(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text("[settings]\ncheck_trusted = true\n")
    sec = Security(SecurityConfig(rules_file=path))
    v = check(sec, svmap(), SENDER, trusted=True)
    assert (v.action, v.rule, v.ban_seconds) == (Action.DROP, "ua-friendly-scanner", 0.0)
    assert not sec.is_banned(SENDER, 1.0)


def test_never_ban_networks() -> None:
    cfg = SecurityConfig(
        never_ban=("192.0.2.0/24", "2001:db8::/32"),
        flood=FloodSettings(reqs_density_per_unit=1),
    )
    sec = Security(cfg)
    v = check(sec, svmap(), SENDER)
    assert (v.action, v.rule) == (Action.DROP, "ua-friendly-scanner")
    check(sec, make_request(), "2001:db8::5")
    v2 = check(sec, make_request(), "2001:db8::5")
    assert (v2.action, v2.rule) == (Action.DROP, "flood")
    assert sec.bans.list(0.0) == []
    assert sec.counters()["security.ban_skipped"] == 2
    assert check(sec, svmap(), SCANNER).action is Action.BAN  # others still banned


def test_dry_run_blocks_and_bans_nothing() -> None:
    sec = Security(SecurityConfig(dry_run=True))
    v = check(sec, svmap(), SCANNER)
    assert (v.action, v.dry_run, v.would, v.rule) == (
        Action.ACCEPT,
        True,
        Action.BAN,
        "ua-friendly-scanner",
    )
    assert not sec.is_banned(SCANNER, 1.0)
    assert sec.counters()["rules.dry_run"] == 1


def test_reload_through_the_facade(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text("")
    sec = Security(SecurityConfig(rules_file=path))
    req = make_request(ua="Acme/1")
    assert check(sec, req).action is Action.ACCEPT
    path.write_text(
        '[[rule]]\nname = "acme"\nfield = "user_agent"\nmatch = "prefix"\nvalue = "Acme"\n'
        'action = "reject"\nstatus = 488\n'
    )
    assert sec.reload() is True
    v = check(sec, req)
    assert (v.action, v.status, v.reason, v.rule) == (Action.REJECT, 488, "Forbidden", "acme")


def test_no_default_rules() -> None:
    sec = Security(SecurityConfig(use_default_rules=False))
    assert check(sec, svmap(), SCANNER).action is Action.ACCEPT


# ----------------------------------------------------------------- auth failures


def test_auth_failures_ban(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", "sipedge.security")
    sec = Security(SecurityConfig(auth=AuthFailSettings(max_failures=3, ban_seconds=600)))
    assert sec.auth_failed(SCANNER, "1000", 0.0).action is Action.ACCEPT
    assert sec.auth_failed(SCANNER, None, 1.0).action is Action.ACCEPT
    v = sec.auth_failed(SCANNER, "1000", 2.0)
    assert (v.action, v.rule, v.ban_seconds) == (Action.BAN, "auth", 600.0)
    assert sec.is_banned(SCANNER, 601.0) and not sec.is_banned(SCANNER, 602.0)
    assert f"sipedge AUTHFAIL ip={SCANNER} user=-" in caplog.messages
    assert f"sipedge BAN ip={SCANNER} reason=auth seconds=600" in caplog.messages
    assert sec.counters()["security.auth_failure"] == 3


def test_auth_failures_for_one_user_from_many_sources() -> None:
    sec = Security(SecurityConfig(auth=AuthFailSettings(user_max_failures=4)))
    ips = [f"198.51.100.{i}" for i in range(4)]
    verdicts = [sec.auth_failed(ip, "alice", float(i)) for i, ip in enumerate(ips)]
    assert [v.action for v in verdicts] == [Action.ACCEPT] * 3 + [Action.BAN]
    assert verdicts[-1].rule == "auth-user"
    assert {b.ip for b in sec.bans.list(5.0)} == set(ips)


def test_auth_tracking_off() -> None:
    sec = Security(SecurityConfig(auth=None, flood=None))
    for i in range(100):
        assert sec.auth_failed(SCANNER, "1000", float(i)).action is Action.ACCEPT
        assert check(sec, make_request(), SCANNER, 0.0).action is Action.ACCEPT


def test_svcrack_malformed_authorization_counts_as_failure() -> None:
    """svcrack sends qop=auth without cnonce/nc when the challenge had no qop: the
    authenticator refuses it, the proxy reports the failure and the cracker is banned."""
    auth = Authenticator(
        MemoryCredentialStore([Credential.from_password("1000", "example.com", "1234")]),
        "example.com",
        secret=b"0123456789abcdef-test-secret",
        clock=lambda: 1_700_000_000.0,
    )
    sec = Security(SecurityConfig(use_default_rules=False))  # UA rules off: only auth bans
    broken = (
        'Digest username="1000",realm="example.com",nonce="bm9uY2U",uri="sip:10.0.0.5",'
        'response="5d4c5c0b2b6e4b9d8d9c3f5a1e2b3c4d",algorithm=MD5,qop=auth'
    )
    now = 0.0
    for attempt, password in enumerate(["1220", "1221", "1222", "1223", "1224"]):
        req = svcrack(password, authorization=broken)
        assert check(sec, req, SCANNER, now).action is Action.ACCEPT
        result = asyncio.run(auth.check(req, proxy=False))
        assert not result.ok
        v = sec.auth_failed(SCANNER, result.username, now)
        assert v.action is (Action.BAN if attempt == 4 else Action.ACCEPT)
        now += 0.5
    assert check(sec, svcrack("1225", authorization=broken), SCANNER, now).rule == "banned"


# ----------------------------------------------------------------- toll fraud


def test_fraud_through_the_facade() -> None:
    cfg = SecurityConfig(fraud=FraudSettings(default_limits=AccountLimits(max_concurrent=1)))
    sec = Security(cfg)
    assert sec.check_call("alice", "+88112345", 0.0).rule == "fraud.denied_prefix"
    assert sec.check_call("alice", "+33142000000", 0.0).rule == "fraud.international"
    assert sec.check_call("alice", "2001", 0.0).action is Action.ACCEPT
    sec.call_started("alice", "c1")
    assert sec.check_call("alice", "2002", 0.0).rule == "fraud.concurrent"
    sec.call_ended("c1")
    assert sec.check_call("alice", "2002", 0.0).action is Action.ACCEPT
    c = sec.counters()
    assert c["fraud.denied_prefix"] == c["fraud.international"] == c["fraud.concurrent"] == 1
    assert c["fraud.accepted"] == 2


# ----------------------------------------------------------------- other ban lists


class SlowBans:
    """A BanList whose ban suspends once, like a network store."""

    def __init__(self) -> None:
        self.inner = MemoryBanList()

    async def ban(self, ip: str, seconds: float, reason: str, *, now: float | None = None) -> None:
        await asyncio.sleep(0)
        self.inner.ban_now(ip, seconds, reason, now or 0.0)

    async def unban(self, ip: str) -> bool:
        return await self.inner.unban(ip)

    def is_banned(self, ip: str, now: float) -> bool:
        return self.inner.is_banned(ip, now)

    def list(self, now: float | None = None) -> builtins.list[Ban]:
        return self.inner.list(now)


class QuickBans(SlowBans):
    """A BanList whose ban never suspends (but is not the memory list)."""

    async def ban(self, ip: str, seconds: float, reason: str, *, now: float | None = None) -> None:
        self.inner.ban_now(ip, seconds, reason, now or 0.0)


def test_spawn_receives_the_ban_coroutine() -> None:
    spawned: list[Coroutine[Any, Any, None]] = []
    bans = SlowBans()
    sec = Security(bans=bans, spawn=spawned.append)
    assert check(sec, svmap(), SCANNER, 5.0).action is Action.BAN
    assert len(spawned) == 1 and not bans.is_banned(SCANNER, 6.0)

    async def run() -> None:
        await spawned[0]

    asyncio.run(run())
    assert bans.is_banned(SCANNER, 6.0)


def test_ban_runs_as_a_task_on_the_running_loop() -> None:
    bans = SlowBans()
    sec = Security(bans=bans)

    async def run() -> None:
        assert check(sec, svmap(), SCANNER, 5.0).action is Action.BAN
        for _ in range(3):
            await asyncio.sleep(0)
        assert bans.is_banned(SCANNER, 6.0)

    asyncio.run(run())


def test_ban_inline_without_a_loop() -> None:
    quick = QuickBans()
    sec = Security(bans=quick)
    assert check(sec, svmap(), SCANNER, 5.0).action is Action.BAN
    assert quick.is_banned(SCANNER, 6.0)
    slow = Security(bans=SlowBans())
    with pytest.raises(ProtocolError, match="pass spawn="):
        check(slow, svmap(), SCANNER, 5.0)


def test_unban_forgets_counts() -> None:
    sec = Security(SecurityConfig(auth=AuthFailSettings(max_failures=2)))
    sec.auth_failed(SCANNER, "u", 0.0)
    assert sec.auth_failed(SCANNER, "u", 1.0).action is Action.BAN
    assert asyncio.run(sec.unban(SCANNER)) is True
    assert not sec.is_banned(SCANNER, 2.0)
    assert sec.auth_failed(SCANNER, None, 3.0).action is Action.ACCEPT  # counts restart


def test_check_request_cost(capsys: pytest.CaptureFixture[str]) -> None:
    """Micro-benchmark of the whole check for a legitimate request (printed only)."""
    sec = Security(SecurityConfig(flood=FloodSettings(reqs_density_per_unit=10**9)))
    reqs = [make_request() for _ in range(2000)]  # fresh messages: lazy fields not cached
    start = time.perf_counter()
    for i, req in enumerate(reqs):
        sec.check_request(req, SENDER, i * 1e-3, proxy_ips=PROXY)
    per = (time.perf_counter() - start) / len(reqs)
    with capsys.disabled():
        print(f"\n[bench] Security.check_request: {per * 1e6:.1f} us per legitimate request")
    assert sec.counters()["security.checked"] == len(reqs)
