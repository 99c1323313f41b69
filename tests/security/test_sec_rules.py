"""The rule table: every shipped rule, every match type, placeholders, order, scoring, dry-run."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sec_support import (
    PROXY_IP,
    SCANNER,
    SENDER,
    make_request,
    rule,
    svcrack,
    svmap,
    svwar,
    table,
)

from sipedge.security import Action, RuleAction, RuleTable, default_rules
from sipedge.security.rules import Rule

SHIPPED, SHIPPED_SETTINGS = default_rules()
SHIPPED_TABLE = RuleTable(SHIPPED, SHIPPED_SETTINGS)


def shipped(req: Any, source: str = SENDER, proxy_ips: tuple[str, ...] = (PROXY_IP,)) -> Any:
    return SHIPPED_TABLE.evaluate(req, source, proxy_ips).verdict


# (shipped rule, request keywords, source address, expected action)
DEFAULT_CASES: list[tuple[str, dict[str, Any], str, Action]] = [
    ("ua-friendly-scanner", {"ua": "friendly-scanner"}, SENDER, Action.BAN),
    ("ua-sipcli-1.8", {"ua": "sipcli/v1.8"}, SENDER, Action.BAN),
    ("ua-sipcli-2.2", {"ua": "sipcli/v2.2"}, SENDER, Action.BAN),
    ("ua-vaxsip-3.1", {"ua": "VaxSIPUserAgent/3.1"}, SENDER, Action.BAN),
    ("ua-sip-call", {"ua": "SIP Call"}, SENDER, Action.DROP),
    ("ua-cisco-cucm8.6", {"ua": "Cisco-CUCM8.6"}, SENDER, Action.DROP),
    ("ua-simplesip-4.3", {"ua": "SimpleSIP V4.3"}, SENDER, Action.DROP),
    ("ua-cisco-sipgateway", {"ua": "Cisco-SIPGateway/IOS-12.x"}, SENDER, Action.DROP),
    ("ua-z-3.14", {"ua": "Z 3.14.38719 r38691"}, SENDER, Action.DROP),
    ("ua-kamailio-scanners", {"ua": "PPLSIP/2.1"}, SENDER, Action.DROP),
    ("ua-fpbx", {"ua": "FPBX-13.0.192.16(13.17.0)"}, SENDER, Action.ACCEPT),
    ("ua-freepbx-1.8", {"ua": "FreePBX 1.8.0"}, SENDER, Action.ACCEPT),
    ("from-100-at-1.1.1.1", {"from_": "<sip:100@1.1.1.1>;tag=a1"}, SENDER, Action.BAN),
    ("from-100-at-proxy", {"from_": f"<sip:100@{PROXY_IP}>;tag=a1"}, SENDER, Action.DROP),
    ("from-voipgw-at-sender", {"from_": f"<sip:voipgw@{SENDER}>;tag=a1"}, SENDER, Action.DROP),
    (
        "from-8888888888-at-sender",
        {"from_": f"<sip:8888888888@{SENDER}>;tag=a1"},
        SENDER,
        Action.DROP,
    ),
    ("from-trunk-at-proxy", {"from_": f"<sip:trunk@{PROXY_IP}>;tag=a1"}, SENDER, Action.DROP),
    ("from-user-at-proxy", {"from_": f"<sip:user@{PROXY_IP}>;tag=a1"}, SENDER, Action.DROP),
    ("from-test-at-proxy", {"from_": f"<sip:test@{PROXY_IP}>;tag=a1"}, SENDER, Action.DROP),
    ("from-admin-at-proxy", {"from_": f"<sip:admin@{PROXY_IP}>;tag=a1"}, SENDER, Action.DROP),
    ("from-nm-at-nm", {"from_": "<sip:nm@nm>;tag=a1"}, SENDER, Action.DROP),
    ("display-sipvicious", {"from_": '"sipvicious" <sip:a@b.c>;tag=a1'}, SENDER, Action.BAN),
    ("display-caller", {"from_": '"Caller" <sip:a@b.c>;tag=a1'}, SENDER, Action.DROP),
    ("display-mayet", {"from_": '"MAYET" <sip:a@b.c>;tag=a1'}, SENDER, Action.DROP),
    ("display-simple-sip", {"from_": '"Simple SIP" <sip:a@b.c>;tag=a1'}, SENDER, Action.DROP),
    ("display-0123456789", {"from_": '"0123456789" <sip:a@b.c>;tag=a1'}, SENDER, Action.DROP),
    ("shape-callid-digits", {"call_id": "300971219"}, SENDER, Action.ACCEPT),
    ("shape-branch-digits", {"branch": "z9hG4bK-4216745"}, SENDER, Action.ACCEPT),
    (
        "shape-fromtag-hex-01",
        {"from_": "<sip:a@b.c>;tag=3130303001353437323035333335"},
        SENDER,
        Action.ACCEPT,
    ),
    ("shape-fromtag-svcrack", {"from_": "<sip:a@b.c>;tag=3206210844"}, SENDER, Action.ACCEPT),
    (
        "shape-accept-sdp-register",
        {"method": "REGISTER", "uri": "sip:example.com", "extra": ["Accept: application/sdp"]},
        SENDER,
        Action.ACCEPT,
    ),
]


def test_every_shipped_rule_has_a_case() -> None:
    assert {name for name, *_ in DEFAULT_CASES} == {r.name for r in SHIPPED}


@pytest.mark.parametrize(("name", "kw", "source", "action"), DEFAULT_CASES)
def test_shipped_rule(name: str, kw: dict[str, Any], source: str, action: Action) -> None:
    out = SHIPPED_TABLE.evaluate(make_request(**kw), source, (PROXY_IP,))
    assert name in out.hits
    v = out.verdict
    assert v.action is action
    if action is Action.ACCEPT:
        assert name in v.alarms  # alarm-only rules: logged and counted, not blocking
    else:
        assert v.rule == name
    if action is Action.BAN:
        assert v.ban_seconds == SHIPPED_SETTINGS.ban_seconds


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"ua": "Asterisk PBX 20.5.0"},
        {"ua": "FreeSWITCH-mod_sofia/1.10.11"},
        {"ua": "Zoiper rv2.10.20.2"},
        {"ua": "Cisco-CP8841/14.2.1"},
        {"ua": "JsSIP 3.10.0", "call_id": "q4ekbs2f0t5dhr3o8i7c"},
        {"from_": f"<sip:alice@{PROXY_IP}>;tag=9fxced76sl", "call_id": "1234@host"},
        {"from_": "<sip:voipgw@203.0.113.9>;tag=x"},  # voipgw from another address
        {"from_": '"Caller ID" <sip:a@b.c>;tag=x'},
        {"method": "OPTIONS", "extra": ["Accept: application/sdp"]},  # RFC 3261 §11.2 example
    ],
)
def test_legitimate_requests_pass_untouched(kw: dict[str, Any]) -> None:
    out = SHIPPED_TABLE.evaluate(make_request(**kw), SENDER, (PROXY_IP,))
    assert out.verdict.action is Action.ACCEPT
    assert out.verdict.alarms == ()
    assert not out.verdict.dry_run


@pytest.mark.parametrize(
    ("req", "rule_name", "action"),
    [
        (svmap("OPTIONS"), "ua-friendly-scanner", Action.BAN),
        (svmap("INVITE"), "ua-friendly-scanner", Action.BAN),
        (svwar(), "ua-friendly-scanner", Action.BAN),
        (svcrack(), "ua-friendly-scanner", Action.BAN),
        (svcrack("1234"), "ua-friendly-scanner", Action.BAN),
        # a copy patched to send another User-Agent: other rules, then the shapes
        (svmap("OPTIONS", ua="Linphone/5.2"), "from-100-at-1.1.1.1", Action.BAN),
        (svwar(ua="Linphone/5.2"), "score", Action.DROP),
        (svcrack(ua="Linphone/5.2"), "score", Action.DROP),
        (svcrack("1234", ua="Linphone/5.2"), "score", Action.DROP),
    ],
)
def test_sipvicious_shapes(req: Any, rule_name: str, action: Action) -> None:
    v = shipped(req, SCANNER)
    assert (v.action, v.rule) == (action, rule_name)


def test_patched_svwar_scores_every_shape() -> None:
    v = shipped(svwar(ua="Linphone/5.2"), SCANNER)
    assert set(v.alarms) == {
        "shape-callid-digits",
        "shape-branch-digits",
        "shape-fromtag-hex-01",
        "shape-accept-sdp-register",
    }
    assert v.detail == "score 4"


def test_two_shapes_only_alarm() -> None:
    req = make_request(call_id="411293178100031266324363", branch="z9hG4bK-2395497203")
    v = shipped(req)
    assert v.action is Action.ACCEPT
    assert set(v.alarms) == {"shape-callid-digits", "shape-branch-digits"}


# ----------------------------------------------------------------- match types


@pytest.mark.parametrize(
    ("match", "value", "ua", "hit"),
    [
        ("exact", "Foo/1.0", "Foo/1.0", True),
        ("exact", "Foo/1.0", "Foo/1.0 extra", False),
        ("exact", "Foo/1.0", "foo/1.0", False),
        ("prefix", "Foo", "Foo/1.0", True),
        ("prefix", "Foo/1.0 long", "Foo", False),
        ("prefix", "Foo", "xFoo", False),
        ("regex", "o/[0-9]", "Foo/1.0", True),
        ("regex", "^o/", "Foo/1.0", False),
        ("regex", "^Foo/1\\.0$", "Foo/1.0", True),
    ],
)
def test_match_types_on_user_agent(match: str, value: str, ua: str, hit: bool) -> None:
    t = table(rule("user_agent", match, value))
    v = t.evaluate(make_request(ua=ua), SENDER).verdict
    assert (v.action is Action.DROP) is hit


@pytest.mark.parametrize("match", ["exact", "prefix", "regex"])
def test_ignore_case(match: str) -> None:
    t = table(rule("user_agent", match, "FOO", ignore_case=True))
    assert t.evaluate(make_request(ua="foo"), SENDER).verdict.action is Action.DROP
    strict = table(rule("user_agent", match, "FOO"))
    assert strict.evaluate(make_request(ua="foo"), SENDER).verdict.action is Action.ACCEPT


@pytest.mark.parametrize(
    ("value", "source", "hit"),
    [
        ("203.0.113.0/24", "203.0.113.77", True),
        ("203.0.113.0/24", "203.0.114.1", False),
        ("203.0.113.5", "203.0.113.5", True),
        ("2001:db8::/32", "2001:db8:1::9", True),
        ("2001:db8::/32", "2001:db9::1", False),
        ("0.0.0.0/0", "2001:db8::1", False),  # never across families
        ("::/0", "192.0.2.1", False),
    ],
)
def test_cidr_on_source(value: str, source: str, hit: bool) -> None:
    t = table(rule("source_ip", "cidr", value, "reject"))
    v = t.evaluate(make_request(), source).verdict
    assert (v.action is Action.REJECT) is hit
    if hit:
        assert (v.status, v.reason) == (403, "Forbidden")


def test_cidr_on_uri_hosts() -> None:
    t = table(
        rule("contact_host", "cidr", "2001:db8::/32"), rule("from_host", "cidr", "10.0.0.0/8")
    )
    v6 = make_request(contact="<sip:a@[2001:DB8::7]:5060>")
    assert t.evaluate(v6, SENDER).verdict.rule == "contact_host-cidr-2001:db8::/32"
    assert t.evaluate(make_request(from_="<sip:a@10.1.2.3>;tag=1"), SENDER).verdict.blocked
    assert not t.evaluate(make_request(from_="<sip:a@example.com>;tag=1"), SENDER).verdict.blocked


def test_placeholders_exact() -> None:
    t = table(rule("from", "exact", "x@${sender_ip}"), rule("to", "exact", "y@${proxy_ip}"))
    hit_sender = make_request(from_=f"<sip:x@{SENDER}>;tag=1")
    assert t.evaluate(hit_sender, SENDER).verdict.blocked
    assert not t.evaluate(hit_sender, "192.0.2.99").verdict.blocked
    to_proxy = make_request(to="<sip:y@10.9.9.9>")
    assert t.evaluate(to_proxy, SENDER, ("10.0.0.5", "10.9.9.9")).verdict.blocked
    assert not t.evaluate(to_proxy, SENDER, ("10.0.0.5",)).verdict.blocked
    assert not t.evaluate(to_proxy, SENDER, ()).verdict.blocked  # no proxy address known


def test_placeholder_ipv6_brackets_and_case() -> None:
    t = table(rule("from", "exact", "voipgw@${sender_ip}"))
    req = make_request(from_="<sip:voipgw@[2001:DB8::1]>;tag=1")
    assert t.evaluate(req, "2001:db8::1").verdict.blocked


def test_placeholders_in_prefix_and_regex() -> None:
    t = table(
        rule("contact", "prefix", "scan@${sender_ip}", name="p"),
        rule("from", "regex", "^(trunk|pbx)@${proxy_ip}$", name="r"),
        rule("call_id", "regex", "^${sender_ip}-${sender_ip}$", name="twice"),
    )
    contact = make_request(contact=f"<sip:scan@{SENDER}:5099>")
    assert t.evaluate(contact, SENDER).verdict.rule == "p"
    pbx = make_request(from_=f"<sip:pbx@{PROXY_IP}>;tag=1")
    assert t.evaluate(pbx, SENDER, (PROXY_IP,)).verdict.rule == "r"
    assert not t.evaluate(pbx, SENDER, ("10.0.0.6",)).verdict.blocked
    twice = make_request(call_id=f"{SENDER}-{SENDER}")
    assert t.evaluate(twice, SENDER).verdict.rule == "twice"
    mixed = make_request(call_id=f"{SENDER}-192.0.2.11")
    assert not t.evaluate(mixed, SENDER).verdict.blocked


def test_same_placeholder_means_same_address() -> None:
    t = table(rule("from", "exact", "${proxy_ip}@${proxy_ip}"))
    both = ("10.0.0.5", "10.0.0.6")
    same = make_request(from_="<sip:10.0.0.5@10.0.0.5>;tag=1")
    mixed = make_request(from_="<sip:10.0.0.5@10.0.0.6>;tag=1")
    assert t.evaluate(same, SENDER, both).verdict.blocked
    assert not t.evaluate(mixed, SENDER, both).verdict.blocked


@pytest.mark.parametrize(
    ("field", "value", "kw"),
    [
        ("ruri_user", "100", {"uri": f"sip:100@{PROXY_IP}"}),
        ("ruri_host", PROXY_IP, {"uri": f"sip:100@{PROXY_IP}"}),
        ("ruri", f"100@{PROXY_IP}", {"uri": f"sip:100@{PROXY_IP}"}),
        ("from_user", "alice", {}),
        ("from_host", "example.com", {"from_": "<sip:alice@EXAMPLE.com>;tag=1"}),
        ("from_display", 'A "B"', {"from_": '"A \\"B\\"" <sip:alice@x.org>;tag=1'}),
        ("from_tag", "1928301774", {}),
        ("to", "bob@example.com", {}),
        ("to_user", "bob", {}),
        ("to_host", "example.com", {}),
        ("to_display", "Bob", {}),
        ("contact", f"alice@{SENDER}", {}),
        ("call_id", "a84b4c76e66710@pc33.example.com", {}),
        ("via_branch", "z9hG4bK776asdhds", {}),
        ("method", "INVITE", {}),
        ("header:X-Scan", "yes", {"extra": ["X-Scan: yes"]}),
        ("header:Subject", "hi", {"extra": ["s: hi"]}),  # compact form
    ],
)
def test_attributes(field: str, value: str, kw: dict[str, Any]) -> None:
    t = table(rule(field, "exact", value))
    assert t.evaluate(make_request(**kw), SENDER).verdict.blocked
    assert not t.evaluate(make_request(**kw), SENDER).verdict.alarms


@pytest.mark.parametrize(
    "kw",
    [{"ua": None}, {"contact": None}, {"contact": "<<<garbage"}, {"extra": []}],
)
def test_absent_or_malformed_attribute_matches_nothing(kw: dict[str, Any]) -> None:
    t = table(
        rule("user_agent", "regex", ".*"),
        rule("contact", "regex", ".*"),
        rule("header:X-Scan", "regex", ".*"),
    )
    out = t.evaluate(make_request(**kw), SENDER)
    assert "header:X-Scan-regex-.*" not in out.hits
    if "ua" in kw:
        assert out.verdict.rule == "contact-regex-.*"
    elif "contact" in kw:
        assert out.verdict.rule == "user_agent-regex-.*"


def test_methods_filter() -> None:
    t = table(rule("user_agent", "exact", "X", methods=["register"]))
    assert t.evaluate(make_request("REGISTER", "sip:example.com", ua="X"), SENDER).verdict.blocked
    assert not t.evaluate(make_request("INVITE", ua="X"), SENDER).verdict.blocked


# ----------------------------------------------------------------- order, scoring, dry-run


def test_first_blocking_rule_wins_and_alarms_before_it_are_kept() -> None:
    t = table(
        rule("user_agent", "prefix", "X", "alarm", name="a1"),
        rule("user_agent", "regex", "X", "reject", name="r", status=488, reason="Go Away"),
        rule("user_agent", "exact", "X", "ban", name="b"),
        rule("user_agent", "exact", "X", "alarm", name="a2"),
    )
    out = t.evaluate(make_request(ua="X"), SENDER)
    v = out.verdict
    assert (v.action, v.rule, v.status, v.reason, v.alarms) == (
        Action.REJECT,
        "r",
        488,
        "Go Away",
        ("a1",),
    )
    assert out.hits == ("a1", "r")


def test_accept_rule_exempts_from_later_rules() -> None:
    t = table(
        rule("source_ip", "cidr", "192.0.2.0/24", "accept", name="our-pbx"),
        rule("user_agent", "prefix", "Cisco-SIPGateway", "drop", name="cisco"),
    )
    req = make_request(ua="Cisco-SIPGateway/IOS-15")
    v = t.evaluate(req, SENDER).verdict
    assert (v.action, v.rule) == (Action.ACCEPT, "our-pbx")
    assert t.evaluate(req, "203.0.113.1").verdict.rule == "cisco"


def test_rule_ban_seconds_overrides_table() -> None:
    t = table(rule("user_agent", "exact", "X", "ban", ban_seconds=60), ban_seconds=999.0)
    assert t.evaluate(make_request(ua="X"), SENDER).verdict.ban_seconds == 60.0
    t2 = table(rule("user_agent", "exact", "X", "ban"), ban_seconds=999.0)
    assert t2.evaluate(make_request(ua="X"), SENDER).verdict.ban_seconds == 999.0


def test_score_threshold_and_action() -> None:
    rules = [
        rule("user_agent", "prefix", "S", "alarm", name="s1", score=2),
        rule("call_id", "regex", "^[0-9]+$", "alarm", name="s2", score=1),
    ]
    t = table(*rules, score_threshold=3, score_action=RuleAction.REJECT)
    v = t.evaluate(make_request(ua="Scan", call_id="123"), SENDER).verdict
    assert (v.action, v.rule, v.status, v.detail) == (Action.REJECT, "score", 403, "score 3")
    assert t.evaluate(make_request(ua="Scan"), SENDER).verdict.action is Action.ACCEPT
    off = table(*rules, score_threshold=0)
    assert off.evaluate(make_request(ua="Scan", call_id="123"), SENDER).verdict.alarms == (
        "s1",
        "s2",
    )
    assert not off.evaluate(make_request(ua="Scan", call_id="123"), SENDER).verdict.blocked


def test_dry_run_table_reports_without_blocking() -> None:
    t = table(rule("user_agent", "exact", "X", "ban", name="b"), dry_run=True)
    v = t.evaluate(make_request(ua="X"), SENDER).verdict
    assert (v.action, v.dry_run, v.would, v.rule) == (Action.ACCEPT, True, Action.BAN, "b")
    assert not v.blocked
    assert not t.evaluate(make_request(ua="Y"), SENDER).verdict.dry_run


def test_dry_run_table_reports_score() -> None:
    t = RuleTable(SHIPPED, SHIPPED_SETTINGS.__class__(dry_run=True))
    v = t.evaluate(svwar(ua="Linphone/5.2"), SCANNER).verdict
    assert (v.action, v.would, v.rule) == (Action.ACCEPT, Action.DROP, "score")


def test_dry_run_rule_does_not_hide_a_later_enforcing_rule() -> None:
    t = table(
        rule("user_agent", "exact", "X", "ban", name="new", dry_run=True),
        rule("user_agent", "prefix", "X", "drop", name="old"),
    )
    v = t.evaluate(make_request(ua="X"), SENDER).verdict
    assert (v.action, v.rule, v.dry_run) == (Action.DROP, "old", False)
    only = table(rule("user_agent", "exact", "X", "reject", name="new", dry_run=True))
    v2 = only.evaluate(make_request(ua="X"), SENDER).verdict
    assert (v2.action, v2.would, v2.rule, v2.status) == (Action.ACCEPT, Action.REJECT, "new", 403)


# ----------------------------------------------------------------- index = plain walk

IPS = ["192.0.2.7", "10.0.0.5", "10.0.0.6"]
_tokens = st.sampled_from(["a", "b", "@", "${sender_ip}", "${proxy_ip}"])
_value_tokens = st.sampled_from(["a", "b", "@", *IPS])


def _reference(rules: list[Rule], ua: str, sender: str, proxies: list[str]) -> str | None:
    """The first matching rule's name, by the plain definition of each match type."""
    for r in rules:
        for p in proxies if "${proxy_ip}" in r.value else [""]:
            want = r.value.replace("${sender_ip}", sender).replace("${proxy_ip}", p)
            if ua == want if r.match.value == "exact" else ua.startswith(want):
                return r.name
    return None


@settings(max_examples=150, deadline=None)
@given(
    specs=st.lists(
        st.tuples(st.sampled_from(["exact", "prefix"]), st.lists(_tokens, min_size=1, max_size=4)),
        min_size=1,
        max_size=8,
    ),
    ua=st.lists(_value_tokens, min_size=1, max_size=5).map("".join),
    sender=st.sampled_from(IPS),
    proxies=st.lists(st.sampled_from(IPS), max_size=2, unique=True),
)
def test_indexed_table_equals_plain_walk(
    specs: list[tuple[str, list[str]]], ua: str, sender: str, proxies: list[str]
) -> None:
    rules = [
        rule("user_agent", m, "".join(toks), name=f"r{i}") for i, (m, toks) in enumerate(specs)
    ]
    got = table(*rules).evaluate(make_request(ua=ua), sender, proxies).verdict.rule
    assert got == _reference(rules, ua, sender, proxies)
