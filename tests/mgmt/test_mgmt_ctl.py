"""``sipedge ctl`` against the API over a fake facade, served over loopback HTTP."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from mgmt_fake import CALL, EARLY, REG, FakeFacade

from sipedge.cli import main
from sipedge.mgmt.api import ApiSettings, create_api
from sipedge.mgmt.client import table
from sipedge.mgmt.server import bind_socket, uvicorn_server

TOKEN = "ctl-token-ctl-token-ctl"


class Served:
    """The fake API on a loopback port, in a thread with its own event loop."""

    def __init__(self, token: str = "") -> None:
        self.fake = FakeFacade()
        self.sock = bind_socket("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn_server(create_api(self.fake, ApiSettings(token=token)))
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        while not self.server.started:
            self.thread.join(0.01)

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.sock]))

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(5)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    s = Served()
    yield s
    s.stop()


def ctl(served: Served, *args: str, token: str = "") -> tuple[int, str]:
    extra = ["--token", token] if token else []
    result = CliRunner().invoke(main, ["ctl", "--url", served.url, *extra, *args])
    return result.exit_code, result.output


def test_table_pads_columns() -> None:
    assert table(["a", "bb"], [("xyz", None), (1, "q")]).splitlines() == [
        "a    bb",
        "---  --",
        "xyz",
        "1    q",
    ]


def test_status_commands_print_tables(served: Served) -> None:
    code, out = ctl(served, "stats")
    assert code == 0 and "calls_active" in out and "2" in out
    code, out = ctl(served, "transports")
    assert code == 0 and "127.0.0.1  5060" in out
    assert ctl(served, "health")[1].strip() == "ok"
    assert "sipedge_x 1" in ctl(served, "metrics")[1]
    assert "0.1.0" in ctl(served, "version")[1]
    code, out = ctl(served, "relay")
    assert code == 0 and out.startswith("node")


def test_json_before_or_after_the_command(served: Served) -> None:
    for args in (("--json", "calls", "list"), ("calls", "list", "--json")):
        code, out = ctl(served, *args)
        assert code == 0 and [c["key"] for c in json.loads(out)] == [CALL.key, EARLY.key]


def test_calls_end_by_key_or_call_id(served: Served) -> None:
    code, out = ctl(served, "calls", "end", CALL.call_id)
    assert code == 0 and out.strip() == f"ended {CALL.key}"
    assert ("end_call", CALL.key) in served.fake.log
    code, out = ctl(served, "calls", "end", EARLY.key)
    assert code == 1 and "HTTP 409" in out and "early" in out
    code, out = ctl(served, "calls", "end", "missing-call")
    assert code == 1 and "0 active calls" in out
    code, out = ctl(served, "calls", "show", CALL.key)
    assert code == 0 and "confirmed" in out
    assert "bye" in ctl(served, "calls", "list", "--recent")[1]


def test_registrations_list_show_remove(served: Served) -> None:
    assert REG.contact in ctl(served, "reg", "list", "--aor", "alice")[1]
    assert REG.contact in ctl(served, "reg", "show", "alice@example.com")[1]
    code, out = ctl(served, "reg", "show", "nobody@example.com")
    assert code == 1 and "HTTP 404" in out
    code, out = ctl(served, "reg", "rm", REG.aor, "--contact", REG.contact)
    assert code == 0 and "removed 1" in out
    served.fake.regs = [REG]


def test_bans_rules_reload_log_level_capture(served: Served) -> None:
    assert "banned 198.51.100.4" in ctl(served, "bans", "add", "198.51.100.4", "--seconds", "90")[1]
    assert "198.51.100.4  manual" in ctl(served, "bans", "list")[1]
    assert ctl(served, "bans", "rm", "198.51.100.4")[0] == 0
    assert ctl(served, "bans", "rm", "198.51.100.4")[0] == 1
    code, out = ctl(served, "bans", "add", "not-an-ip")
    assert code == 1 and "HTTP 400" in out
    assert "ua-x" in ctl(served, "rules", "show")[1]
    assert "unchanged" in ctl(served, "rules", "reload")[1]
    code, out = ctl(served, "reload")
    assert code == 0 and "security rules" in out
    assert ctl(served, "log-level", "info")[1].strip() == "info"
    assert ctl(served, "log-level")[1].strip() == "info"
    out = ctl(served, "capture", "show", "call-1@host", "--full")[1]
    assert "INVITE sip:bob@example.com SIP/2.0" in out and "-> 127.0.0.1:5060" in out
    assert "call-1@host" in ctl(served, "capture", "list")[1]


def test_token_from_option_env_or_config(tmp_path: Path) -> None:
    s = Served(token=TOKEN)
    try:
        code, out = ctl(s, "stats")
        assert code == 1 and "HTTP 401" in out
        assert ctl(s, "stats", token=TOKEN)[0] == 0
        env = CliRunner(env={"SIPEDGE_API_URL": s.url, "SIPEDGE_API_TOKEN": TOKEN})
        assert env.invoke(main, ["ctl", "stats"]).exit_code == 0
        port = s.url.rsplit(":", 1)[1]
        cfg = tmp_path / "sipedge.toml"
        cfg.write_text(f'[api]\nport = {port}\ntoken = "{TOKEN}"\n')
        assert CliRunner().invoke(main, ["ctl", "--config", str(cfg), "stats"]).exit_code == 0
    finally:
        s.stop()


def test_unreachable_api_is_one_clear_line() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = CliRunner().invoke(main, ["ctl", "--url", f"http://127.0.0.1:{port}", "stats"])
    assert result.exit_code == 1 and "cannot reach the API" in result.output
