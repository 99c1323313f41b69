"""The configuration model: defaults, a full file, every kind of error, overrides, docs."""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import Field, ValidationError

from sipedge.config import (
    Config,
    ConfigError,
    HostPort,
    Invalid,
    Listen,
    Section,
    apply_overrides,
    load_config,
    parse_config,
    parse_listen,
)
from sipedge.config.doc import render_reference, render_toml
from sipedge.config.problems import validate

ROOT = Path(__file__).resolve().parent.parent

FULL = """\
[server]
listen = ["udp:0.0.0.0:5060", "tcp:[2001:db8::1]:5061"]
domains = ["Example.COM", "sip.example.com"]
trusted = ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]
advertise = { "udp:0.0.0.0:5060" = "203.0.113.5:5060" }
user_agent = "edge-1"
log_level = "debug"
log_format = "json"
router = "mycorp.routing:Router"
shutdown_grace = 2

[proxy]
record_route = false
double_record_route = false
max_forwards = 30
timer_c = 200
loop_detection = true
default_upstream = "sip:pbx.example.com;transport=tcp"

[[proxy.routes]]
name = "trunk"
domain = "pstn.example.com"
user_prefix = "00"
to = "sip:192.0.2.10:5060;transport=udp"
strip = 2
prefix = "+"

[[proxy.routes]]
name = "fork"
to = ["sip:a.example.com", "sips:[2001:db8::9]:5061"]

[timers]
t1 = 0.25
t2 = 2.0
t4 = 4.0

[limits]
max_message_size = 16384
max_headers = 64
max_line_length = 1024
max_vias = 10

[tcp]
connect_timeout = 1.5
idle_timeout = 60.0
message_timeout = 3.0
max_connections_per_ip = 8
max_connections = 100

[dns]
nameservers = ["192.0.2.53", "2001:db8::53"]
port = 5353
timeout = 0.5
cache_size = 0
"""


def problems_of(text: str) -> list[str]:
    """The problems ``load``-ing this TOML text reports (fails if it is valid)."""
    with pytest.raises(ConfigError) as info:
        parse_config(tomllib.loads(text))
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


def only_problem(text: str) -> str:
    problems = problems_of(text)
    assert len(problems) == 1, problems
    return problems[0]


# --- defaults and a full file ----------------------------------------------------------


def test_defaults_are_the_documented_ones() -> None:
    c = Config.default()
    assert [str(x) for x in c.server.listen] == ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]
    assert c.server.listen[0] == Listen("udp", "127.0.0.1", 5060)
    assert [str(n) for n in c.server.trusted] == ["127.0.0.0/8", "::1/128"]
    assert (c.server.domains, dict(c.server.advertise)) == ((), {})
    assert (c.server.user_agent, c.server.log_level, c.server.log_format) == (
        "",
        "warning",
        "text",
    )
    assert (c.server.router, c.server.shutdown_grace) == ("", 5.0)
    p = c.proxy
    assert (p.record_route, p.double_record_route, p.max_forwards, p.timer_c) == (
        True,
        True,
        70,
        180.0,
    )
    assert (p.loop_detection, p.default_upstream, p.routes) == (False, "", ())
    assert (c.timers.t1, c.timers.t2, c.timers.t4) == (0.5, 4.0, 5.0)
    assert c.limits.model_dump() == {
        "max_message_size": 65535,
        "max_headers": 256,
        "max_line_length": 8192,
        "max_vias": 70,
    }
    assert c.tcp.model_dump() == {
        "connect_timeout": 5.0,
        "idle_timeout": 600.0,
        "message_timeout": 10.0,
        "max_connections_per_ip": 64,
        "max_connections": 10000,
    }
    assert c.dns.model_dump() == {
        "nameservers": (),
        "port": 53,
        "timeout": 2.0,
        "cache_size": 10000,
    }


def test_no_file_and_an_empty_file_give_the_defaults(tmp_path: Path) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    assert load_config(None) == Config.default()
    assert load_config(empty) == Config.default()
    assert load_config(empty, {}) == Config()


def test_full_example_file(tmp_path: Path) -> None:
    path = tmp_path / "sipedge.toml"
    path.write_text(FULL)
    c = load_config(path)
    s = c.server
    assert s.listen == (Listen("udp", "0.0.0.0", 5060), Listen("tcp", "2001:db8::1", 5061))
    assert str(s.listen[1]) == "tcp:[2001:db8::1]:5061"
    assert s.domains == ("example.com", "sip.example.com")
    assert s.trusted == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("2001:db8::/32"),
        ipaddress.ip_network("192.0.2.7/32"),
    )
    assert dict(s.advertise) == {s.listen[0]: HostPort("203.0.113.5", 5060)}
    assert (s.user_agent, s.log_level, s.log_format) == ("edge-1", "debug", "json")
    assert (s.router, s.shutdown_grace) == ("mycorp.routing:Router", 2.0)
    p = c.proxy
    assert (p.record_route, p.double_record_route, p.loop_detection) == (False, False, True)
    assert (p.max_forwards, p.timer_c) == (30, 200.0)
    assert p.default_upstream == "sip:pbx.example.com;transport=tcp"
    trunk, fork = p.routes
    assert (trunk.name, trunk.domain, trunk.user_prefix, trunk.strip, trunk.prefix) == (
        "trunk",
        "pstn.example.com",
        "00",
        2,
        "+",
    )
    assert trunk.to == ("sip:192.0.2.10:5060;transport=udp",)
    assert fork.to == ("sip:a.example.com", "sips:[2001:db8::9]:5061")
    assert (fork.domain, fork.user_prefix, fork.strip, fork.prefix) == ("", "", 0, "")
    assert (c.timers.t1, c.timers.t2, c.timers.t4) == (0.25, 2.0, 4.0)
    assert c.limits.max_vias == 10
    assert c.tcp.max_connections_per_ip == 8
    assert c.dns.nameservers == ("192.0.2.53", "2001:db8::53")
    assert (c.dns.port, c.dns.timeout, c.dns.cache_size) == (5353, 0.5, 0)


def test_config_is_frozen_and_hashable_parts_are_immutable() -> None:
    c = parse_config(tomllib.loads(FULL))
    with pytest.raises(ValidationError):
        c.server.log_level = "error"
    with pytest.raises(TypeError):
        c.server.advertise[Listen("udp", "1.2.3.4", 5)] = HostPort("x")  # type: ignore[index]
    assert isinstance(c.server.listen, tuple)
    assert isinstance(c.proxy.routes, tuple)


def test_json_dump_round_trips() -> None:
    c = parse_config(tomllib.loads(FULL))
    dumped = c.model_dump(mode="json")
    assert dumped["server"]["listen"] == ["udp:0.0.0.0:5060", "tcp:[2001:db8::1]:5061"]
    assert dumped["server"]["advertise"] == {"udp:0.0.0.0:5060": "203.0.113.5:5060"}
    assert parse_config(dumped) == c


# --- each kind of error names the key and the fix ---------------------------------------

ERRORS = [
    # (TOML, key, words in the problem, words in the fix)
    (
        'server.listen = ["udp:127.0.0.1:5060", "tcp:127.0.0.1"]',
        "server.listen[1]",
        '"tcp:127.0.0.1" has no port',
        'write PROTO:HOST:PORT, e.g. "tcp:127.0.0.1:5060"',
    ),
    ('server.listen = ["udp:::1:5060"]', "server.listen[0]", "without brackets", "udp:[::1]:5060"),
    (
        'server.listen = ["tcp:2001:db8::1"]',
        "server.listen[0]",
        "brackets",
        "tcp:[2001:db8::1]:5060",
    ),
    ('server.listen = ["upd:127.0.0.1:5060"]', "server.listen[0]", '"upd"', "udp:127.0.0.1:5060"),
    ('server.listen = ["udp:pbx.lan:5060"]', "server.listen[0]", "not an IP", "server.domains"),
    ('server.listen = ["tcp:[::1]:70000"]', "server.listen[0]", "70000", "1 to 65535"),
    ('server.listen = ["udp:[10.0.0.1]:5060"]', "server.listen[0]", "brackets", "udp:10.0.0.1"),
    ("server.listen = []", "server.listen", "empty", "at least one"),
    (
        'server.listen = ["udp:127.0.0.1:5060", "UDP:127.0.0.1:5060"]',
        "server.listen",
        "listed twice",
        "once",
    ),
    ("server.listen = 5060", "server.listen", "expected a list", "e.g. listen = ["),
    ("server.listen = [5060]", "server.listen[0]", "expected a string", "udp:127.0.0.1:5060"),
    ('server.trusted = ["10.1.2.3/8"]', "server.trusted[0]", "host bits", '"10.0.0.0/8"'),
    ('server.trusted = ["10.0.0.0/33"]', "server.trusted[0]", "CIDR", "10.0.0.0/8"),
    ('server.domains = ["exa mple.com"]', "server.domains[0]", "not a valid host", "example.com"),
    ('server.domains = ["[::1]"]', "server.domains[0]", "not a domain", "example.com"),
    (
        'server.advertise = { "udp:127.0.0.1:5060" = "203.0.113.5:0" }',
        'server.advertise["udp:127.0.0.1:5060"]',
        "port",
        "1 to 65535",
    ),
    (
        'server.advertise = { "udp:0.0.0.0:5060" = "203.0.113.5" }',
        'server.advertise["udp:0.0.0.0:5060"]',
        "not one of server.listen",
        "as written in server.listen",
    ),
    ('server.log_level = "warn"', "server.log_level", '"warn" is not one of', 'write "warning"'),
    ('server.log_format = "xml"', "server.log_format", '"xml"', '"text", "json"'),
    ('server.router = "mymodule.Router"', "server.router", "module:Class", "routing:MyRouter"),
    ('server.user_agent = "a\\r\\nX: y"', "server.user_agent", "control", "remove"),
    ('server.shutdown_grace = "5"', "server.shutdown_grace", "the string", "shutdown_grace = 5.0"),
    ("server.shutdown_grace = -1", "server.shutdown_grace", "-1 is below", ">= 0"),
    ("server.lisen = []", "server.lisen", "unknown key", 'did you mean "listen"?'),
    ("[servr]", "servr", "unknown section", 'did you mean "server"?'),
    ("[frobnicate]", "frobnicate", "unknown section", "known keys: server, proxy"),
    (
        '[[proxy.routes]]\nname = "t"\nto = "sip:192.0.2.1"\nmedia_set = "edge"',
        "proxy.routes[0].media_set",
        'media_set "edge" is not defined',
        "[[media.sets]]",
    ),
    ('media.nodes = ["udp:relay"]', "media.nodes", "bad rtpengine node", "udp:HOST:PORT"),
    ('listen = ["udp:127.0.0.1:5060"]', "listen", "unknown key", "into the [server] section"),
    ("server = 1", "server", "expected a table", "[server] table"),
    ("proxy.record_route = 1", "proxy.record_route", "the number 1", "record_route = true"),
    ("proxy.max_forwards = 70.0", "proxy.max_forwards", "whole number", "max_forwards = 70"),
    ("proxy.max_forwards = 256", "proxy.max_forwards", "256 is above the maximum 255", "<= 255"),
    ("proxy.timer_c = 179.5", "proxy.timer_c", "below the minimum 180", "RFC 3261 §16.8"),
    (
        'proxy.default_upstream = "sip:pbx example"',
        "proxy.default_upstream",
        "not a valid SIP URI",
        "sip:192.0.2.10:5060",
    ),
    (
        'proxy.default_upstream = "tel:+15551234"',
        "proxy.default_upstream",
        "a tel: URI, but a next hop needs sip: or sips:",
        "write a SIP URI",
    ),
    (
        'proxy.default_upstream = "sip:pbx.example.com:99999"',
        "proxy.default_upstream",
        "port",
        "SIP URI",
    ),
    ("proxy.routes = 1", "proxy.routes", "expected a list", "a [[proxy.routes]] table"),
    ('[[proxy.routes]]\nname = "x"', "proxy.routes[0].to", "required key", 'add to = "sip:'),
    ('[[proxy.routes]]\nto = "sip:a.example"', "proxy.routes[0].name", "missing", "name = "),
    ('[[proxy.routes]]\nname = ""\nto = "sip:a"', "proxy.routes[0].name", "empty", "value"),
    ('[[proxy.routes]]\nname = "x"\nto = []', "proxy.routes[0].to", "empty", "at least one"),
    (
        '[[proxy.routes]]\nname = "x"\nto = ["sip:a", "mailto:x@y"]',
        "proxy.routes[0].to[1]",
        "mailto:",
        "SIP URI",
    ),
    (
        '[[proxy.routes]]\nname = "x"\nto = "sip:a"\nstrp = 1',
        "proxy.routes[0].strp",
        "unknown key",
        '"strip"',
    ),
    (
        '[[proxy.routes]]\nname = "x"\nto = "sip:a"\n[[proxy.routes]]\nname = "x"\nto = "sip:b"',
        "proxy.routes[1].name",
        "used twice",
        "own name",
    ),
    ("timers.t1 = 0", "timers.t1", "0 must be greater than 0", "> 0"),
    ("timers.t1 = nan", "timers.t1", "nan is not a finite number", "finite"),
    ("proxy.timer_c = inf", "proxy.timer_c", "inf is not a finite number", "finite"),
    ("[timers]\nt1 = 2.0\nt2 = 1.0", "timers.t2", "less than t1", "RFC 3261 §17.1.2.2"),
    ("limits.max_line_length = 70000", "limits.max_line_length", "exceeds", "<= 65535"),
    ("tcp.max_connections = 10", "tcp.max_connections_per_ip", "64", "<= 10"),
    ('dns.nameservers = ["ns1.example"]', "dns.nameservers[0]", "not an IP", "192.0.2.53"),
    ("dns.port = 0", "dns.port", "0 is below the minimum 1", ">= 1"),
]


@pytest.mark.parametrize(("text", "key", "problem", "fix"), ERRORS)
def test_each_error_names_the_key_the_problem_and_the_fix(
    text: str, key: str, problem: str, fix: str
) -> None:
    message = only_problem(text)
    got_key, _, rest = message.partition(": ")
    got_problem, sep, got_fix = rest.partition("; fix: ")
    assert got_key == key, message
    assert sep, message
    assert problem in got_problem, message
    assert fix in got_fix, message


def test_the_brief_example_message_verbatim() -> None:
    assert only_problem('server.listen = ["udp:127.0.0.1:5060", "tcp:127.0.0.1"]') == (
        'server.listen[1]: "tcp:127.0.0.1" has no port; '
        'fix: write PROTO:HOST:PORT, e.g. "tcp:127.0.0.1:5060"'
    )


def test_all_problems_are_reported_together() -> None:
    problems = problems_of(
        """
        [server]
        listen = ["udp:127.0.0.1", "tcp:[::1]:5060"]
        log_level = "loud"
        [proxy]
        timer_c = 60
        [timers]
        t4 = -1.0
        [dns]
        port = "53"
        [mgmt]
        """
    )
    keys = [p.partition(": ")[0] for p in problems]
    assert keys == [
        "server.listen[0]",
        "server.log_level",
        "proxy.timer_c",
        "timers.t4",
        "dns.port",
        "mgmt",
    ]
    assert all("; fix: " in p for p in problems)


# --- reading files ------------------------------------------------------------------------


def test_bad_toml_gives_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[server]\nlog_level = "info"\nlisten = [\n  "udp:127.0.0.1:5060"\n  x\n]\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (message,) = info.value.problems
    assert message.startswith(f"{path}:5:3: invalid TOML (")
    assert message.endswith("fix: correct the TOML syntax at line 5, column 3")


def test_missing_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file") as info:
        load_config(tmp_path / "nope.toml")
    assert info.value.problems[0].startswith(str(tmp_path / "nope.toml"))
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'server.user_agent = "caf\xe9"\n')
    with pytest.raises(ConfigError, match="not UTF-8; fix: save the file as UTF-8"):
        load_config(latin)


# --- overrides (what the command line sets) -----------------------------------------------


def test_listen_override_replaces_the_file_listeners(tmp_path: Path) -> None:
    path = tmp_path / "sipedge.toml"
    path.write_text(FULL)
    over = {"server.listen": ["udp:[::1]:5070", "TCP:127.0.0.1:5071"], "server.log_level": "info"}
    c = load_config(path, over)
    assert c.server.listen == (Listen("udp", "::1", 5070), Listen("tcp", "127.0.0.1", 5071))
    assert [str(x) for x in c.server.listen] == ["udp:[::1]:5070", "tcp:127.0.0.1:5071"]
    assert c.server.log_level == "info"
    assert c.server.domains == ("example.com", "sip.example.com")  # the rest is the file's
    assert c.proxy.routes[0].name == "trunk"


def test_override_errors_are_marked() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, {"server.listen": ["udp:[::1]"], "server.lisen": []})
    assert info.value.problems == [
        'server.listen[0] (override): "udp:[::1]" has no port; '
        'fix: write PROTO:HOST:PORT, e.g. "udp:[::1]:5060"',
        'server.lisen (override): unknown key; fix: did you mean "listen"?',
    ]


def test_apply_overrides_copies_and_creates_tables() -> None:
    data = {"server": {"listen": ["udp:127.0.0.1:5060"]}, "proxy": 5}
    out = apply_overrides(data, {"server.listen": [], "proxy.timer_c": 200, "dns.port": 54})
    assert out == {"server": {"listen": []}, "proxy": {"timer_c": 200}, "dns": {"port": 54}}
    assert data == {"server": {"listen": ["udp:127.0.0.1:5060"]}, "proxy": 5}


@given(
    proto=st.sampled_from(["udp", "tcp"]),
    ip=st.ip_addresses(),
    port=st.integers(1, 65535),
)
def test_listen_round_trips(
    proto: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int
) -> None:
    host = f"[{ip}]" if ip.version == 6 else str(ip)
    text = f"{proto}:{host}:{port}"
    listen = parse_listen(text)
    assert listen == Listen(proto, str(ip), port)
    assert str(listen) == text
    assert Listen.parse(str(listen)) == listen


@given(st.text(max_size=30))
def test_parse_listen_raises_only_invalid(text: str) -> None:
    try:
        listen = parse_listen(text)
    except Invalid as exc:
        assert exc.problem and exc.fix
    else:
        assert parse_listen(str(listen)) == listen


# --- extending the model and generating the docs -----------------------------------------


class _Registrar(Section):
    """A section added later."""

    max_expires: int = Field(default=3600, ge=60, description="Longest registration.")


class _Extended(Config):
    registrar: _Registrar = Field(default_factory=lambda: _Registrar())


def test_a_new_section_is_validated_and_documented() -> None:
    assert validate(_Extended, {"registrar": {"max_expires": 600}}).registrar.max_expires == 600
    with pytest.raises(ConfigError) as info:
        validate(_Extended, {"registrar": {"max_expire": 10}, "regstrar": {}})
    assert info.value.problems == [
        'registrar.max_expire: unknown key; fix: did you mean "max_expires"?',
        'regstrar: unknown section; fix: did you mean "registrar"?',
    ]
    doc = render_reference(_Extended)
    assert "## `[registrar]`" in doc
    assert "| `max_expires` | integer, >= 60 | `3600` | Longest registration. |" in doc


def test_committed_reference_matches_the_generator() -> None:
    committed = (ROOT / "docs" / "config.md").read_text(encoding="utf-8")
    assert committed == render_reference(), "run: python scripts/gen_config_doc.py"


def test_reference_documents_every_key() -> None:
    doc = render_reference()
    for name, field in Config.model_fields.items():
        section = field.annotation
        assert isinstance(section, type) and issubclass(section, Section)
        assert f"## `[{name}]`" in doc
        for key in section.model_fields:
            assert f"| `{key}` |" in doc
    assert "## `[[proxy.routes]]`" in doc
    assert "| `timer_c` | float, >= 180.0 | `180.0` |" in doc


def test_rendered_toml_loads_back() -> None:
    for config in (Config.default(), parse_config(tomllib.loads(FULL))):
        assert parse_config(tomllib.loads(render_toml(config))) == config
    doc = render_reference()
    block = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    assert parse_config(tomllib.loads(block)) == Config.default()


def test_listen_override_drops_advertise_entries_of_replaced_listeners() -> None:
    data = tomllib.loads(FULL)
    kept = parse_config(data, {"server.listen": ["UDP:0.0.0.0:5060"]})
    assert dict(kept.server.advertise) == {
        Listen("udp", "0.0.0.0", 5060): HostPort("203.0.113.5", 5060)
    }
    dropped = parse_config(data, {"server.listen": ["udp:127.0.0.1:5070"]})
    assert dict(dropped.server.advertise) == {}
    with pytest.raises(ConfigError, match=r"not one of server\.listen"):
        parse_config(
            data,
            {
                "server.listen": ["udp:127.0.0.1:5070"],
                "server.advertise": {"udp:0.0.0.0:5060": "203.0.113.5"},
            },
        )
