"""The command line (``sipedge run``, ``sipedge check``), logging set-up and loop choice."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import sipedge
from sipedge.cli import main
from sipedge.config import Config, Listen
from sipedge.runtime.logs import configure_logging
from sipedge.runtime.loop import best_loop_factory, install_best_loop

GOOD = """\
[server]
listen = ["udp:127.0.0.1:5060"]
domains = ["example.com"]
log_level = "error"

[[proxy.routes]]
name = "trunk"
domain = "pstn.example.com"
user_prefix = "00"
to = ["sip:192.0.2.10:5060", "sip:192.0.2.11:5060"]
"""

BAD = """\
[server]
listen = ["tcp:127.0.0.1"]
lisen = []
[proxy]
timer_c = 10
"""


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Undo what ``configure_logging`` does to the root logger."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    def _write(text: str, name: str = "sipedge.toml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return _write


class FakeApp:
    """Stands in for ``sipedge.app``: records the config ``serve`` was called with."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.calls: list[Config] = []
        self.sources: list[Callable[[], Config] | None] = []
        self.loops: list[str] = []
        self.error = error

    async def serve(self, config: Config, source: Callable[[], Config] | None = None) -> None:
        self.calls.append(config)
        self.sources.append(source)
        self.loops.append(type(asyncio.get_running_loop()).__module__)
        if self.error is not None:
            raise self.error


@pytest.fixture
def fake_app(monkeypatch: pytest.MonkeyPatch) -> FakeApp:
    fake = FakeApp()
    module = types.ModuleType("sipedge.app")
    module.serve = fake.serve  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sipedge.app", module)
    monkeypatch.setattr(sipedge, "app", module, raising=False)
    return fake


# --- check ---------------------------------------------------------------------------------


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"sipedge, version {sipedge.__version__}\n"


def test_check_valid_file_prints_a_summary(write: Callable[..., Path]) -> None:
    path = write(GOOD)
    result = CliRunner().invoke(main, ["check", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"{path}: OK",
        "listeners: udp:127.0.0.1:5060",
        "domains: example.com",
        "routes: 1",
        "  trunk: domain pstn.example.com, user 00* -> sip:192.0.2.10:5060, sip:192.0.2.11:5060",
    ]


def test_check_without_a_file_checks_the_defaults() -> None:
    result = CliRunner().invoke(main, ["check"])
    assert result.exit_code == 0
    assert "listeners: udp:127.0.0.1:5060, tcp:127.0.0.1:5060" in result.stdout


def test_check_prints_every_problem_and_exits_1(write: Callable[..., Path]) -> None:
    result = CliRunner().invoke(main, ["check", "--config", str(write(BAD))])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        'server.listen[0]: "tcp:127.0.0.1" has no port; '
        'fix: write PROTO:HOST:PORT, e.g. "tcp:127.0.0.1:5060"',
        'server.lisen: unknown key; fix: did you mean "listen"?',
        "proxy.timer_c: 10 is below the minimum 180; fix: write a value >= 180 (RFC 3261 §16.8)",
    ]
    assert result.stderr == "sipedge: 3 problems found\n"


def test_check_reports_toml_syntax_and_missing_files(write: Callable[..., Path]) -> None:
    path = write("[server\n")
    result = CliRunner().invoke(main, ["check", "--config", str(path)])
    assert result.exit_code == 1
    assert result.stdout.startswith(f"{path}:1:8: invalid TOML")
    result = CliRunner().invoke(main, ["check", "--config", str(path.parent / "missing.toml")])
    assert result.exit_code == 1
    assert "cannot read the file" in result.stdout


# --- run -----------------------------------------------------------------------------------


def test_run_calls_serve_with_the_merged_config(
    fake_app: FakeApp, write: Callable[..., Path]
) -> None:
    path = write(GOOD)
    args = [
        "run",
        "--config",
        str(path),
        "--listen",
        "udp:[::1]:5070",
        "--listen",
        "tcp:0.0.0.0:5071",
    ]
    result = CliRunner().invoke(main, [*args, "--log-level", "debug", "--log-format", "json"])
    assert result.exit_code == 0, result.output
    (config,) = fake_app.calls
    assert config.server.listen == (Listen("udp", "::1", 5070), Listen("tcp", "0.0.0.0", 5071))
    assert (config.server.log_level, config.server.log_format) == ("debug", "json")
    assert config.server.domains == ("example.com",)  # from the file
    assert config.proxy.routes[0].name == "trunk"
    (source,) = fake_app.sources
    assert source is not None
    path.write_text(GOOD.replace("example.com", "example.net"))  # re-read for SIGHUP
    again = source()
    assert again.server.domains == ("example.net",)
    assert again.server.listen == config.server.listen  # the command-line overrides stay
    expected_loop = "uvloop" if best_loop_factory()[0] == "uvloop" else "asyncio"
    assert fake_app.loops[0].split(".")[0] == expected_loop
    assert logging.getLogger().level == logging.DEBUG


def test_run_without_options_serves_the_defaults(fake_app: FakeApp) -> None:
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 0, result.output
    assert fake_app.calls == [Config.default()]
    assert logging.getLogger().level == logging.WARNING
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_sipedge_handler", False)]
    assert [type(h.formatter).__name__ for h in ours] == ["TextFormatter"]


def test_run_with_a_bad_config_does_not_serve(fake_app: FakeApp) -> None:
    result = CliRunner().invoke(main, ["run", "--listen", "udp:::1:5060"])
    assert result.exit_code == 1
    assert fake_app.calls == []
    assert result.stderr.splitlines() == [
        'server.listen[0] (override): "udp:::1:5060" has an IPv6 address without brackets; '
        'fix: put it in brackets: "udp:[::1]:5060"',
        "sipedge: 1 problem in the configuration",
    ]


def test_run_rejects_an_unknown_log_level(fake_app: FakeApp) -> None:
    result = CliRunner().invoke(main, ["run", "--log-level", "loud"])
    assert result.exit_code == 2
    assert fake_app.calls == []


def test_run_reports_os_errors_from_serve(fake_app: FakeApp) -> None:
    fake_app.error = OSError(98, "Address already in use")
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 1
    assert "cannot run: [Errno 98] Address already in use" in result.stderr


def test_run_without_the_engine_fails_cleanly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sipedge.app", None)  # makes the import fail
    monkeypatch.delattr(sipedge, "app", raising=False)
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 1
    assert "the proxy engine cannot be loaded" in result.stderr


def test_python_dash_m() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sipedge", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout == f"sipedge, version {sipedge.__version__}\n"


# --- logging and the event loop ------------------------------------------------------------


def test_text_logs() -> None:
    stream = io.StringIO()
    configure_logging("info", "text", stream)
    log = logging.getLogger("sipedge.test")
    log.debug("hidden")
    log.info("hello %s", "world", extra={"call_id": "abc@host"})
    log.warning("plain")
    first, second = stream.getvalue().splitlines()
    stamp, level, name, message = first.split(" ", 3)
    assert stamp.endswith("Z") and "T" in stamp
    assert (level, name, message) == ("INFO", "sipedge.test", "hello world call_id=abc@host")
    assert second.split(" ", 1)[1] == "WARNING sipedge.test plain"


def test_json_logs_and_reconfiguring_replaces_the_handler() -> None:
    configure_logging("debug", "text", io.StringIO())
    stream = io.StringIO()
    configure_logging("warning", "json", stream)
    log = logging.getLogger("sipedge.test")
    log.info("hidden")
    log.error("boom", extra={"call_id": "c1"})
    try:
        raise ValueError("bad")
    except ValueError:
        log.exception("failed")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2
    assert {k: lines[0][k] for k in ("level", "logger", "message", "call_id")} == {
        "level": "error",
        "logger": "sipedge.test",
        "message": "boom",
        "call_id": "c1",
    }
    assert "call_id" not in lines[1]
    assert "ValueError: bad" in lines[1]["exc"]
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_sipedge_handler", False)]
    assert len(ours) == 1


def test_configure_logging_rejects_unknown_values() -> None:
    with pytest.raises(ValueError, match="log level"):
        configure_logging("loud", "text")
    with pytest.raises(ValueError, match="log format"):
        configure_logging("info", "xml")


def test_loop_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("uvloop")
    name, factory = best_loop_factory()
    assert name == "uvloop"
    loop = factory()
    try:
        assert type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()
    policy = asyncio.get_event_loop_policy()
    try:
        assert install_best_loop() == "uvloop"
        assert type(asyncio.get_event_loop_policy()).__module__.startswith("uvloop")
    finally:
        asyncio.set_event_loop_policy(policy)
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if not installed
    assert best_loop_factory() == ("asyncio", asyncio.new_event_loop)
    assert install_best_loop() == "asyncio"
    assert asyncio.get_event_loop_policy() is policy
