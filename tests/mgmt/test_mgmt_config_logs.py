"""The [api] section, the Call-ID on log lines, run-time log levels and the monitor."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sipedge.config import ConfigError, load_config
from sipedge.mgmt.monitor import Monitor
from sipedge.runtime.logs import CALL_ID, configure_logging, current_level, set_level


def load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return load_config(path).api


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, text)
    return err.value.problems


def test_api_defaults_to_loopback_without_token(tmp_path: Path) -> None:
    api = load(tmp_path, "")
    assert (api.enabled, api.host, api.port, api.token) == (True, "127.0.0.1", 8080, "")  # type: ignore[attr-defined]


def test_beyond_loopback_needs_a_token(tmp_path: Path) -> None:
    found = problems(tmp_path, '[api]\nhost = "0.0.0.0"\n')
    assert len(found) == 1 and found[0].startswith("api.token:") and "beyond loopback" in found[0]
    assert problems(tmp_path, '[api]\nhost = "::"\n')[0].startswith("api.token:")
    ok = load(tmp_path, '[api]\nhost = "0.0.0.0"\ntoken = "0123456789abcdef0123"\n')
    assert ok.host == "0.0.0.0"  # type: ignore[attr-defined]
    assert load(tmp_path, '[api]\nhost = "::1"\n').host == "::1"  # type: ignore[attr-defined]
    assert load(tmp_path, '[api]\nhost = "0.0.0.0"\nenabled = false\n') is not None


def test_short_tokens_and_bad_values_are_refused(tmp_path: Path) -> None:
    assert "shorter than 16" in problems(tmp_path, '[api]\ntoken = "short"\n')[0]
    assert problems(tmp_path, "[api]\nport = 70000\n")[0].startswith("api.port:")
    assert problems(tmp_path, '[api]\nhost = "localhost"\n')[0].startswith("api.host:")
    assert problems(tmp_path, "[api]\ncapture_messages = -1\n")[0].startswith(
        "api.capture_messages"
    )


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.setLevel(level)
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_log_lines_carry_the_call_id_of_the_message_being_handled(
    fmt: str, restore_root: None
) -> None:
    stream = io.StringIO()
    configure_logging("info", fmt, stream)
    log = logging.getLogger("sipedge.test")
    log.info("outside")
    token = CALL_ID.set("abc@host")
    try:
        log.info("inside")
        log.info("explicit", extra={"call_id": "other@host"})
    finally:
        CALL_ID.reset(token)
    lines = stream.getvalue().splitlines()
    if fmt == "json":
        ids = [json.loads(line).get("call_id") for line in lines]
    else:
        ids = [line.split("call_id=")[1] if "call_id=" in line else None for line in lines]
    assert ids == [None, "abc@host", "other@host"]


def test_log_level_changes_at_run_time(restore_root: None) -> None:
    configure_logging("warning", "text", io.StringIO())
    assert current_level() == "warning"
    set_level("debug")
    assert current_level() == "debug" and logging.getLogger().isEnabledFor(logging.DEBUG)
    set_level("error")
    assert current_level() == "error"
    with pytest.raises(ValueError):
        set_level("loud")


def test_monitor_history_counts_calls_started_per_second() -> None:
    started = [5]
    mon = Monitor(lambda: (2, started[0]), keep=3, wall=lambda: 1000.0)
    started[0] = 8
    mon.sample(0.004)
    mon.sample(0.0)
    started[0] = 9
    for _ in range(3):
        mon.sample(0.001)
    assert [x.calls_started for x in mon.history] == [1, 0, 0]  # bounded to 3
    assert mon.last_lag == 0.001
    assert all(x.calls_active == 2 for x in mon.history)


def test_monitor_measures_loop_lag_and_pings_each_node_once_at_a_time() -> None:
    calls: list[str] = []
    in_flight: set[str] = set()

    async def ping(label: str) -> object:
        assert label not in in_flight  # never two pings to one node at once
        in_flight.add(label)
        calls.append(label)
        try:
            if label == "bad":
                raise TimeoutError("no answer")
            await asyncio.sleep(0.02)
            return {"result": "pong"}
        finally:
            in_flight.discard(label)

    async def main() -> Monitor:
        mon = Monitor(
            lambda: (0, 0), nodes=lambda: ["good", "bad"], ping=ping, tick=0.01, ping_every=0.01
        )
        mon.ping_nodes()
        mon.ping_nodes()  # both still in flight: nothing more
        task = asyncio.get_running_loop().create_task(mon.run())
        await asyncio.sleep(0.005)
        time.sleep(0.05)  # block the loop: the monitor must see the lag
        await asyncio.sleep(0.05)
        task.cancel()
        await mon.close()
        return mon

    mon = asyncio.run(main())
    assert calls[:2] == ["good", "bad"] and calls.count("bad") > calls.count("good")
    assert mon.rtt["bad"] is None and mon.rtt["good"] is not None and mon.rtt["good"] >= 0.02
    assert mon.rtt_hist["good"].count >= 1
    assert mon.lag.count >= 1 and mon.lag.sum >= 0.03
