"""Rule files: parsing, errors, the shipped file, shipped-rule switches and live reload."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sec_support import SENDER, make_request, svmap

from sipedge.config.problems import ConfigError
from sipedge.security import (
    DEFAULT_RULES_TOML,
    Action,
    MatchType,
    RuleAction,
    RuleEngine,
    default_rules,
    parse_rules,
)

SHIPPED = default_rules()[0]

RULE = """
[[rule]]
name = "x"
field = "user_agent"
match = "exact"
value = "X"
action = "drop"
"""


def write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_parse_full_rule_and_settings() -> None:
    rules, settings = parse_rules(
        """
        [settings]
        dry_run = true
        ban_seconds = 120
        score_threshold = 5
        score_action = "reject"
        check_trusted = true
        use_defaults = false
        disable = ["a"]

        [[rule]]
        name = "r"
        field = "header:X-Foo"
        match = "regex"
        value = "^b"
        action = "reject"
        status = 488
        reason = "Not Here"
        ban_seconds = 7
        score = 2
        methods = ["invite", "REGISTER"]
        ignore_case = true
        dry_run = true
        """
    )
    (r,) = rules
    assert (r.name, r.field, r.match, r.value, r.action) == (
        "r",
        "header:X-Foo",
        MatchType.REGEX,
        "^b",
        RuleAction.REJECT,
    )
    assert (r.status, r.reason, r.ban_seconds, r.score) == (488, "Not Here", 7.0, 2)
    assert r.methods == {"INVITE", "REGISTER"}
    assert r.ignore_case and r.dry_run
    assert settings.dry_run and settings.check_trusted and not settings.use_defaults
    assert (settings.ban_seconds, settings.score_threshold) == (120.0, 5)
    assert settings.score_action is RuleAction.REJECT
    assert settings.disable == {"a"}


def test_defaults_for_optional_keys() -> None:
    (r,), settings = parse_rules(RULE)
    assert (r.status, r.reason, r.ban_seconds, r.score, r.methods) == (
        403,
        "Forbidden",
        None,
        0,
        frozenset(),
    )
    assert not settings.dry_run and settings.use_defaults and settings.score_threshold == 3


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (("field", '"user_agnt"'), "field 'user_agnt' unknown"),
        (("match", '"glob"'), "'glob' is not a valid MatchType"),
        (("action", '"kill"'), "'kill' is not a valid RuleAction"),
        (("value", '"(unclosed"'), "missing )"),
        (("value", '"${sender}"'), "placeholder ${sender} unknown"),
        (("status", "200"), "a reject needs a 4xx-6xx status"),
        (("score", '"1"'), "score: expected int"),
        (("score", "true"), "score: expected int"),
        (("methods", '"INVITE"'), "methods: expected a list of strings"),
        (("colour", '"red"'), "colour: unknown key"),
        (("name", None), "name: missing"),
    ],
)
def test_rule_errors_name_the_problem(change: tuple[str, str | None], needle: str) -> None:
    key, value = change
    fields = {
        "name": '"bad"',
        "field": '"user_agent"',
        "match": '"regex"',
        "value": '"X"',
        "action": '"reject"',
    }
    if value is None:
        del fields[key]
    else:
        fields[key] = value
    text = "[[rule]]\n" + "".join(f"{k} = {v}\n" for k, v in fields.items())
    with pytest.raises(ConfigError) as err:
        parse_rules(text, source="f.toml")
    assert any(needle in p and p.startswith("f.toml: rule[0]") for p in err.value.problems), (
        err.value.problems
    )


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[[rule]]\nname = 'c'\nfield = 'source_ip'\nmatch = 'cidr'\nvalue = 'x'\naction = 'drop'",
         "does not appear to be an IPv4 or IPv6 network"),
        ("[[rule]]\nname = 'c'\nfield = 'from'\nmatch = 'cidr'\nvalue = '${sender_ip}'\n"
         "action = 'drop'", "placeholders are not allowed in a cidr rule"),
        (RULE + RULE, "duplicate name"),
        ("[settings]\nbogus = 1\n", "settings.bogus: unknown key"),
        ("[settings]\nscore_action = 'explode'\n", "'explode' is not a valid RuleAction"),
        ("[other]\n", "unknown table 'other'"),
        ("rule = 3\n", "must be [[rule]] tables"),
        ("not toml [", "not valid TOML"),
    ],
)  # fmt: skip
def test_file_errors(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_rules(text)
    assert any(needle in p for p in err.value.problems), err.value.problems


def test_every_problem_is_reported() -> None:
    bad = "[[rule]]\nname='a'\nfield='nope'\nvalue='x'\naction='drop'\n"
    bad += "[[rule]]\nname='b'\nfield='user_agent'\nvalue='x'\naction='nope'\n"
    with pytest.raises(ConfigError) as err:
        parse_rules(bad)
    assert len(err.value.problems) == 2


def test_shipped_rules_file_is_valid() -> None:
    rules, settings = parse_rules(DEFAULT_RULES_TOML)
    names = [r.name for r in rules]
    assert len(names) == len(set(names)) >= 30
    assert settings.score_threshold == 3
    alarm_only = {r.name for r in rules if r.action is RuleAction.ALARM}
    assert alarm_only == {n for n in names if n.startswith("shape-")} | {
        "ua-fpbx",
        "ua-freepbx-1.8",
    }


# ----------------------------------------------------------------- the live engine


def test_engine_without_file_uses_shipped_rules() -> None:
    engine = RuleEngine(default_rules=SHIPPED)
    assert engine.table.rules == tuple(SHIPPED)
    assert engine.reload() is False
    assert engine.check(svmap(), SENDER).action is Action.BAN


def test_engine_file_rules_come_first_then_shipped(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    write(path, RULE.replace('"drop"', '"accept"').replace('"X"', '"friendly-scanner"'))
    engine = RuleEngine(path, default_rules=SHIPPED)
    assert [r.name for r in engine.table.rules][:2] == ["x", SHIPPED[0].name]
    v = engine.check(svmap(), SENDER)
    assert (v.action, v.rule) == (Action.ACCEPT, "x")


def test_engine_disable_and_use_defaults(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    write(path, '[settings]\ndisable = ["ua-friendly-scanner"]\n')
    engine = RuleEngine(path, default_rules=SHIPPED)
    names = {r.name for r in engine.table.rules}
    assert "ua-friendly-scanner" not in names and "ua-sipcli-1.8" in names
    assert engine.check(svmap(), SENDER).rule == "ua-kamailio-scanners"
    write(path, "[settings]\nuse_defaults = false\n" + RULE)
    assert engine.reload() is True
    assert [r.name for r in engine.table.rules] == ["x"]


def test_engine_name_clash_with_shipped(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    write(path, RULE.replace('name = "x"', 'name = "ua-friendly-scanner"'))
    with pytest.raises(ConfigError, match="clash"):
        RuleEngine(path, default_rules=SHIPPED)


def test_reload_picks_up_a_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    write(path, RULE)
    engine = RuleEngine(path)
    assert engine.check(make_request(ua="X"), SENDER).action is Action.DROP
    assert engine.check(make_request(ua="Y"), SENDER).action is Action.ACCEPT
    assert engine.reload() is False  # unchanged
    write(path, RULE.replace('"X"', '"Y"'))
    assert engine.reload() is True
    assert engine.check(make_request(ua="X"), SENDER).action is Action.ACCEPT
    assert engine.check(make_request(ua="Y"), SENDER).action is Action.DROP


def test_reload_with_errors_keeps_the_running_table(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    write(path, RULE)
    engine = RuleEngine(path)
    before = engine.table
    write(path, RULE.replace('"exact"', '"fuzzy"'))
    with pytest.raises(ConfigError):
        engine.reload()
    assert engine.table is before
    assert engine.check(make_request(ua="X"), SENDER).action is Action.DROP
    path.unlink()
    with pytest.raises(ConfigError, match="cannot read"):
        engine.reload()
    assert engine.table is before
    write(path, RULE.replace('"X"', '"Z"'))  # fixed again: taken
    assert engine.reload() is True


def test_dry_run_override_and_file_setting(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    write(path, RULE)
    forced = RuleEngine(path, dry_run=True)
    v = forced.check(make_request(ua="X"), SENDER)
    assert (v.action, v.dry_run, v.would) == (Action.ACCEPT, True, Action.DROP)
    write(path, "[settings]\ndry_run = true\n" + RULE)
    from_file = RuleEngine(path)
    assert from_file.check(make_request(ua="X"), SENDER).dry_run
    off = RuleEngine(path, dry_run=False)
    assert off.check(make_request(ua="X"), SENDER).action is Action.DROP


def test_engine_counters_and_log_lines(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "rules.toml"
    write(path, RULE + RULE.replace('"x"', '"a"').replace('"drop"', '"alarm"'))
    engine = RuleEngine(path)
    caplog.set_level("WARNING", "sipedge.security")
    engine.check(make_request(ua="X"), "203.0.113.9")
    engine.check(make_request(ua="X"), "203.0.113.9")
    assert engine.counters["rule.x"] == 2 and engine.counters["rules.drop"] == 2
    assert engine.counters["rule.a"] == 0  # after the drop: never reached
    write(path, RULE.replace('"drop"', '"alarm"'))
    engine.reload()
    engine.check(make_request(ua="X"), "203.0.113.9")
    assert engine.counters["rules.alarm"] == 1 and engine.counters["rule.x"] == 3
    assert "sipedge ALARM rule=x ip=203.0.113.9 method=INVITE" in caplog.messages
