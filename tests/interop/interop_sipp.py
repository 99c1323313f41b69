"""Run SIPp (Debian ``sip-tester``) as a bounded subprocess and explain its failures.

Every run uses -m, -timeout, -timeout_error and -nostdin, plus an outer wait bound, and
keeps its stdout/stderr, screen, error, message and log files in its own directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from interop_net import HOST, wait_bound

SCENARIOS = Path(__file__).parent / "scenarios"


def sipp_path() -> str | None:
    """The SIPp executable, or None when it is not installed."""
    return shutil.which("sipp")


class SippRun:
    """One SIPp process with its logs."""

    def __init__(self, name: str, args: list[str], logdir: Path, outer_timeout: float) -> None:
        self.name = name
        self.logdir = logdir
        self.outer_timeout = outer_timeout
        logdir.mkdir(parents=True, exist_ok=True)
        exe = sipp_path() or "sipp"
        self.args = [exe, *args, *self._log_args()]
        with (logdir / "output.txt").open("wb") as out:
            self.proc = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=logdir,
                start_new_session=True,
            )

    def _log_args(self) -> list[str]:
        d = self.logdir
        return [
            "-trace_err",
            "-error_file",
            str(d / "errors.log"),
            "-trace_screen",
            "-screen_file",
            str(d / "screen.log"),
            "-trace_msg",
            "-message_file",
            str(d / "messages.log"),
            "-trace_logs",
            "-log_file",
            str(d / "actions.log"),
        ]

    def wait(self, timeout: float | None = None) -> int:
        """Wait for exit (bounded); a SIPp still running at the bound is killed (rc -9)."""
        try:
            return self.proc.wait(timeout=self.outer_timeout if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.wait(timeout=5)

    def kill(self) -> None:
        """Stop SIPp and anything it started."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def read(self, name: str) -> str:
        """One of the log files ("messages.log", "errors.log", ...), or ""."""
        try:
            return (self.logdir / name).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def report(self) -> str:
        """The command, exit code and the tails of its output, screen and error logs."""
        parts = [f"--- sipp {self.name}: rc={self.proc.poll()} {' '.join(self.args)}"]
        for log, tail in (("output.txt", 800), ("screen.log", 1600), ("errors.log", 3000)):
            text = self.read(log)
            if text.strip():
                parts.append(f"--- sipp {self.name} {log} (tail):\n{text[-tail:]}")
        return "\n".join(parts)


def common_args(
    scenario: str, port: int, transport: str, calls: int, timeout_s: float, pause_ms: int
) -> list[str]:
    """Arguments shared by UAC and UAS: scenario, local port, transport and bounds."""
    return [
        "-sf",
        str(SCENARIOS / scenario),
        "-i",
        HOST,
        "-p",
        str(port),
        "-t",
        "t1" if transport == "tcp" else "u1",
        "-m",
        str(calls),
        "-d",
        str(pause_ms),
        "-nostdin",
        "-timeout",
        f"{timeout_s:g}s",
        "-timeout_error",
    ]


def start_uas(
    logdir: Path,
    scenario: str,
    port: int,
    *,
    transport: str = "udp",
    calls: int = 1,
    timeout_s: float = 10,
    pause_ms: int = 0,
) -> SippRun:
    """Start a SIPp UAS and wait until it has bound its port."""
    args = common_args(scenario, port, transport, calls, timeout_s, pause_ms)
    run = SippRun(f"uas-{port}", args, logdir / f"uas-{port}", timeout_s + 5)
    if not wait_bound(port, transport, 3.0):
        run.kill()
        raise AssertionError(f"SIPp UAS did not bind {transport} {port}\n{run.report()}")
    return run


def start_uac(
    logdir: Path,
    scenario: str,
    port: int,
    proxy_port: int,
    ruri: str,
    *,
    transport: str = "udp",
    calls: int = 1,
    rate: float = 10,
    timeout_s: float = 10,
    pause_ms: int = 0,
    extra: tuple[str, ...] = (),
) -> SippRun:
    """Start a SIPp UAC sending `calls` calls to the proxy with Request-URI `ruri`."""
    args = [
        f"{HOST}:{proxy_port}",
        *common_args(scenario, port, transport, calls, timeout_s, pause_ms),
        "-key",
        "ruri",
        ruri,
        "-r",
        f"{rate:g}",
        "-l",
        str(max(calls, 1)),
        *extra,
    ]
    return SippRun(f"uac-{port}", args, logdir / f"uac-{port}", timeout_s + 5)


class Sipps:
    """The SIPp processes of one test: started on demand, all killed at teardown."""

    def __init__(self, logdir: Path, take_port: Callable[[], int]) -> None:
        self.logdir = logdir
        self.take_port = take_port
        self.runs: list[SippRun] = []

    def uas(self, scenario: str, port: int, **kw: Any) -> SippRun:
        """Start a UAS on `port` (see start_uas for keywords)."""
        run = start_uas(self.logdir, scenario, port, **kw)
        self.runs.append(run)
        return run

    def uac(self, scenario: str, proxy_port: int, ruri: str, **kw: Any) -> SippRun:
        """Start a UAC on a fresh local port (see start_uac for keywords)."""
        run = start_uac(self.logdir, scenario, self.take_port(), proxy_port, ruri, **kw)
        self.runs.append(run)
        return run

    def close(self) -> None:
        """Kill whatever is still running."""
        for run in self.runs:
            run.kill()


def expect_success(context: str, *runs: SippRun) -> None:
    """Wait for every run (pass the UAC first) and fail with all logs unless all exited 0.

    Once one run has failed the others get a short grace and are then killed, so a broken
    call fails fast instead of at the UAS timeout. `context` (e.g. the proxy's description)
    is appended to the failure message."""
    codes: list[int] = []
    for run in runs:
        failed = any(code != 0 for code in codes)
        codes.append(run.wait(timeout=2.0 if failed else None))
    if any(codes):
        reports = "\n".join(run.report() for run in runs)
        raise AssertionError(f"SIPp exit codes {codes}\n{reports}\n{context}")
