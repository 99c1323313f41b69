"""Toll fraud: number classification, denied prefixes, international per account, limits."""

from __future__ import annotations

import pytest

from sipedge.security import (
    DEFAULT_DENIED_PREFIXES,
    AccountLimits,
    Action,
    Dialled,
    FraudGuard,
    FraudSettings,
    classify,
)

OPEN = AccountLimits(international=True, max_concurrent=None, max_calls_per_minute=None)
UK = FraudSettings(home_country_code="44", default_limits=OPEN)
NANP = FraudSettings(
    home_country_code="1",
    trunk_prefix="1",
    international_prefixes=("+", "011"),
    default_limits=OPEN,
)


@pytest.mark.parametrize(
    ("dest", "settings", "expected"),
    [
        ("+88112345678", FraudSettings(), Dialled("88112345678", True)),
        ("0088112345678", FraudSettings(), Dialled("88112345678", True)),
        ("sip:+881-1234.5678@gw.example;user=phone", FraudSettings(), Dialled("88112345678", True)),
        ("tel:+44-20-7946-0000", FraudSettings(), Dialled("442079460000", True)),
        ("sip:%2B4420@x", FraudSettings(), Dialled("4420", True)),
        ("+442079460000", UK, Dialled("442079460000", False)),
        ("02079460000", UK, Dialled("442079460000", False)),
        ("0909879000", UK, Dialled("44909879000", False)),
        ("2001", UK, Dialled(None, False)),  # an extension
        ("18765551234", NANP, Dialled("18765551234", False)),
        ("01188112345", NANP, Dialled("88112345", True)),
        ("(212) 555-0100", NANP, Dialled(None, False)),  # local 10-digit, no trunk prefix
        ("alice", FraudSettings(), None),
        ("sip:bob@example.com", FraudSettings(), None),
        ("*72", FraudSettings(), None),
        ("", FraudSettings(), None),
        ("++1", FraudSettings(), None),
    ],
)  # fmt: skip
def test_classify(dest: str, settings: FraudSettings, expected: Dialled | None) -> None:
    assert classify(dest, settings) == expected


def test_default_denied_list_is_digits_and_has_the_usual_ranges() -> None:
    assert all(p.isdigit() for p in DEFAULT_DENIED_PREFIXES)
    assert len(set(DEFAULT_DENIED_PREFIXES)) == len(DEFAULT_DENIED_PREFIXES)
    assert {"881", "882", "883", "1876", "1809", "1900"} <= set(DEFAULT_DENIED_PREFIXES)


@pytest.mark.parametrize(
    ("dest", "settings", "prefix"),
    [
        ("+88216123456", FraudSettings(default_limits=OPEN), "882"),
        ("00883140000000", FraudSettings(default_limits=OPEN), "883"),
        ("+8816 1234 5678", FraudSettings(default_limits=OPEN), "881"),
        ("+1 876 555 1234", FraudSettings(default_limits=OPEN), "1876"),
        ("18095551234", NANP, "1809"),  # dialled like a national number
        ("09098790000", UK, "449"),  # UK premium rate dialled nationally
    ],
)
def test_denied_prefixes(dest: str, settings: FraudSettings, prefix: str) -> None:
    g = FraudGuard(settings)
    v = g.check_call("alice", dest, 0.0)
    assert (v.action, v.status, v.reason) == (Action.REJECT, 403, "Forbidden")
    assert v.rule == "fraud.denied_prefix" and v.alarms == ("fraud.denied_prefix",)
    assert v.detail == f"denied_prefix: prefix {prefix}"
    assert g.counters["fraud.denied_prefix"] == 1 and g.counters["fraud.accepted"] == 0


def test_operator_extends_and_makes_exceptions() -> None:
    g = FraudGuard(
        FraudSettings(
            extra_denied_prefixes=("4930",),
            allowed_prefixes=("88163",),  # a known partner inside 881
            default_limits=OPEN,
            accounts={"ops": AccountLimits(international=True, allowed_prefixes=("4930123",))},
        )
    )
    assert g.check_call("alice", "+493012345", 0.0).blocked
    assert not g.check_call("ops", "+493012345", 0.0).blocked  # longer allowed prefix
    assert g.check_call("ops", "+493099999", 0.0).blocked
    assert not g.check_call("alice", "+8816312345", 0.0).blocked
    assert g.check_call("alice", "+8816212345", 0.0).blocked


def test_longest_prefix_wins_both_ways() -> None:
    g = FraudGuard(
        FraudSettings(
            denied_prefixes=("44", "4477"),
            allowed_prefixes=("447",),
            default_limits=OPEN,
        )
    )
    assert g.check_call("a", "+4420", 0.0).blocked
    assert not g.check_call("a", "+44712", 0.0).blocked
    assert g.check_call("a", "+44771", 0.0).blocked


def test_international_off_unless_enabled_per_account() -> None:
    settings = FraudSettings(
        home_country_code="44",
        accounts={"trunk": AccountLimits(international=True)},
    )
    g = FraudGuard(settings)
    v = g.check_call("alice", "+33142000000", 0.0)
    assert (v.action, v.rule) == (Action.REJECT, "fraud.international")
    assert g.check_call("alice", "0033142000000", 0.0).blocked
    assert not g.check_call("alice", "+442079460000", 0.0).blocked  # home country
    assert not g.check_call("alice", "02079460000", 0.0).blocked
    assert not g.check_call("alice", "2001", 0.0).blocked
    assert not g.check_call("alice", "sip:bob@example.com", 0.0).blocked
    assert not g.check_call("trunk", "+33142000000", 0.0).blocked
    assert g.check_call("trunk", "+881234", 0.0).rule == "fraud.denied_prefix"


def test_concurrent_limit() -> None:
    g = FraudGuard(FraudSettings(default_limits=AccountLimits(max_concurrent=2)))
    for cid in ("c1", "c2"):
        assert not g.check_call("alice", "2001", 0.0).blocked
        g.call_started("alice", cid)
    g.call_started("alice", "c2")  # same Call-ID again: still 2
    assert g.active("alice") == 2
    v = g.check_call("alice", "2001", 0.0)
    assert (v.action, v.rule, v.detail) == (
        Action.REJECT,
        "fraud.concurrent",
        "concurrent: 2 calls",
    )
    assert not g.check_call("bob", "2001", 0.0).blocked  # per account
    g.call_ended("c1")
    g.call_ended("c1")  # twice: ignored
    g.call_ended("unknown")
    assert g.active("alice") == 1
    assert not g.check_call("alice", "2001", 0.0).blocked


def test_calls_per_minute_edges() -> None:
    limits = AccountLimits(max_concurrent=None, max_calls_per_minute=3)
    g = FraudGuard(FraudSettings(default_limits=limits))
    assert [g.check_call("alice", "2001", t).blocked for t in (0.0, 10.0, 20.0)] == [False] * 3
    v = g.check_call("alice", "2001", 59.9)  # just over: a 4th within 60 s
    assert (v.action, v.rule) == (Action.REJECT, "fraud.rate")
    assert not g.check_call("alice", "2001", 60.0).blocked  # the first call left the window
    assert g.check_call("alice", "2001", 60.1).blocked  # 10, 20, 60 within 60 s
    assert not g.check_call("bob", "2001", 60.1).blocked


def test_refused_calls_do_not_use_the_rate() -> None:
    limits = AccountLimits(max_concurrent=None, max_calls_per_minute=1)
    g = FraudGuard(FraudSettings(default_limits=limits))
    assert g.check_call("alice", "+881555", 0.0).blocked  # denied: not counted
    assert not g.check_call("alice", "2001", 1.0).blocked


def test_unlimited_and_account_override() -> None:
    g = FraudGuard(
        FraudSettings(
            default_limits=AccountLimits(max_concurrent=1, max_calls_per_minute=1),
            accounts={"pbx": AccountLimits(max_concurrent=None, max_calls_per_minute=None)},
        )
    )
    for i in range(50):
        assert not g.check_call("pbx", "2001", 0.0).blocked
        g.call_started("pbx", f"c{i}")
    assert g.limits("pbx").max_concurrent is None
    assert g.limits("other").max_concurrent == 1


def test_fraud_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", "sipedge.security")
    FraudGuard().check_call("al ice\n", "+881 23", 0.0)
    assert caplog.messages == [
        "sipedge FRAUD account=al_ice_ dest=+881_23 reason=denied_prefix detail=prefix_881"
    ]
