"""SIPp call-rate benchmark: sipedge, Kamailio (stateful) or no proxy, at rising call rates.

Not a test. For each rate (and repeat) it starts, on a loopback address only: a SIPp UAS, the
peer under test fresh in the foreground, then a SIPp UAC placing ``rate x duration`` calls
(INVITE/100/180/200/ACK/hold/BYE/200, Record-Route honoured) through the peer. It prints one
``RESULT ...`` line per run (see bench/README.md for the fields and the PASS rule) and kills
everything it started, by PID, at the end of each run.

    .venv/bin/python bench/call_rate.py --peer sipedge --rates "500 1000" --duration 15
    .venv/bin/python bench/call_rate.py --peer kamailio --rates "1000 1500" --repeat 2
    .venv/bin/python bench/call_rate.py --peer direct --rates 2000
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import procfs
from sipp_csv import read_stats

HERE = Path(__file__).resolve().parent
PEERS = ("sipedge", "kamailio", "direct")
SIPP_COMMON = ["-nostdin", "-buff_size", "4194304", "-default_behaviors", "all,-abortunexp"]


@dataclass(frozen=True)
class Options:
    """The command line, parsed."""

    peer: str
    rates: list[int]
    duration: int
    repeat: int
    ip: str
    port: int
    uas_port: int
    uac_port: int
    call_ms: int
    cmd: str | None
    stop_after: int
    keep_logs: bool
    workdir: Path
    profile: Path | None
    tag: str


def parse_args(argv: list[str] | None = None) -> Options:
    """Parse and check the command line (loopback addresses only)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--peer", choices=PEERS, default="sipedge")
    ap.add_argument("--rates", default="500", help="target calls/s, space or comma separated")
    ap.add_argument("--duration", type=int, default=15, help="seconds of load per run (15)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per rate (1)")
    ap.add_argument("--ip", default="127.0.0.2", help="loopback address for everything")
    ap.add_argument("--port", type=int, default=5060, help="peer UDP port (5060)")
    ap.add_argument("--uas-port", type=int, default=5070)
    ap.add_argument("--uac-port", type=int, default=5061)
    ap.add_argument("--call-ms", type=int, default=1000, help="hold between ACK and BYE")
    ap.add_argument(
        "--cmd",
        help="command running the peer in the foreground instead of the preset; "
        "{ip} {port} {work} are substituted",
    )
    ap.add_argument("--stop-after", type=int, default=2, help="stop after N FAILs in a row (2)")
    ap.add_argument("--keep-logs", action="store_true", help="keep per-run SIPp/peer logs")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/sipedge-bench"))
    ap.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample the sipedge process with py-spy during each run; raw stacks go to DIR",
    )
    ap.add_argument("--tag", help="name for the peer= field of RESULT lines (default: --peer)")
    a = ap.parse_args(argv)
    if not a.ip.startswith("127."):
        ap.error(f"refusing non-loopback address {a.ip}")
    rates = [int(r) for r in a.rates.replace(",", " ").split()]
    return Options(
        a.peer, rates, a.duration, a.repeat, a.ip, a.port, a.uas_port, a.uac_port,
        a.call_ms, a.cmd, a.stop_after, a.keep_logs, a.workdir, a.profile, a.tag or a.peer,
    )  # fmt: skip


def peer_command(o: Options, work: Path) -> list[str] | None:
    """The argv that runs the peer in the foreground, or None for ``direct``."""
    if o.cmd:
        return ["/bin/sh", "-c", "exec " + o.cmd.format(ip=o.ip, port=o.port, work=work)]
    if o.peer == "sipedge":
        return [sys.executable, "-m", "sipedge", "run", "--listen", f"udp:{o.ip}:{o.port}"]
    if o.peer == "kamailio":
        cfg = HERE / "kamailio" / "stateful.cfg"
        return [
            "kamailio", "-f", str(cfg), "-A", f"BENCH_LISTEN=udp:{o.ip}:{o.port}",
            "-DD", "-E", "-m", "512", "-M", "16", "-Y", str(work), "-P", str(work / "kam.pid"),
        ]  # fmt: skip
    return None


def spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session with stdout+stderr to ``log``."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def stop(proc: subprocess.Popen[bytes] | None, grace: float = 5.0) -> None:
    """SIGTERM ``proc`` and its descendants by PID, then SIGKILL whatever is left."""
    if proc is None:
        return
    pids = procfs.tree(procfs.snapshot(), proc.pid) | {proc.pid}
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc.poll() is not None and not (pids - {proc.pid}) & set(procfs.snapshot()):
            break
        time.sleep(0.05)
    left = (pids - {proc.pid}) & set(procfs.snapshot())
    for pid in left | ({proc.pid} if proc.poll() is None else set()):
        _signal(pid, signal.SIGKILL)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        print(f"warning: pid {proc.pid} did not exit", file=sys.stderr)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def wait_listening(o: Options, port: int, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait until something listens on udp ``o.ip:port`` while ``proc`` stays alive."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if procfs.udp_bound(o.ip, port):
            return True
        time.sleep(0.05)
    return False


def wait_rusage(proc: subprocess.Popen[bytes], timeout: float) -> float:
    """Reap ``proc`` within ``timeout`` s (SIGKILL after); return its user+system CPU seconds."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            print(f"warning: SIPp UAC {proc.pid} overran, killing it", file=sys.stderr)
            _signal(proc.pid, signal.SIGKILL)
            deadline += 10.0
        time.sleep(0.1)


def sipp_uas(o: Options, run: Path) -> list[str]:
    """argv of the SIPp UAS (callee)."""
    return [
        "sipp", "-sf", str(HERE / "scenarios" / "uas_call.xml"), "-i", o.ip, "-p", str(o.uas_port),
        *SIPP_COMMON, "-timeout", f"{o.duration + 60}s",
        "-trace_stat", "-stf", str(run / "uas.csv"), "-fd", "1",
        "-trace_err", "-error_file", str(run / "uas_err.log"),
    ]  # fmt: skip


def sipp_uac(o: Options, run: Path, rate: int) -> list[str]:
    """argv of the SIPp UAC (caller): R-URI at the UAS, datagrams to the peer (``-rsa``)."""
    via = [] if o.peer == "direct" and not o.cmd else ["-rsa", f"{o.ip}:{o.port}"]
    return [
        "sipp", f"{o.ip}:{o.uas_port}", *via, "-sf", str(HERE / "scenarios" / "uac_call.xml"),
        "-i", o.ip, "-p", str(o.uac_port), "-r", str(rate), "-m", str(rate * o.duration),
        "-d", str(o.call_ms), *SIPP_COMMON, "-timeout", f"{o.duration + 40}s",
        "-trace_stat", "-stf", str(run / "uac.csv"), "-fd", "1",
        "-trace_err", "-error_file", str(run / "uac_err.log"),
    ]  # fmt: skip


def count_unexpected(run: Path) -> int:
    """Stray messages SIPp ignored (e.g. a 180 overtaken by its 200), both sides."""
    n = 0
    for name in ("uac_err.log", "uas_err.log"):
        path = run / name
        if path.exists():
            with open(path, encoding="latin-1") as f:
                n += sum("unexpected" in line for line in f)
    return n


def start_profiler(o: Options, pid: int, rate: int, rep: int) -> subprocess.Popen[bytes] | None:
    """py-spy sampling ``pid`` (sipedge only) into ``o.profile``; None when not asked for."""
    if o.profile is None or o.peer != "sipedge":
        return None
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    o.profile.mkdir(parents=True, exist_ok=True)
    out = o.profile / f"sipedge-{rate}cps-{rep}.txt"
    argv = [pyspy, "record", "--pid", str(pid), "--rate", "250", "--format", "raw",
            "--nonblocking", "--output", str(out)]  # fmt: skip
    return spawn(argv, o.profile / f"py-spy-{rate}cps-{rep}.log")


def finish_profiler(prof: subprocess.Popen[bytes] | None) -> None:
    """Make py-spy write its file (SIGINT) and wait for it."""
    if prof is None:
        return
    _signal(prof.pid, signal.SIGINT)
    try:
        prof.wait(timeout=30)
    except subprocess.TimeoutExpired:
        stop(prof)


def run_one(o: Options, rate: int, rep: int) -> str:
    """One run at ``rate``; returns its RESULT line."""
    for port in {o.port, o.uas_port, o.uac_port}:
        if procfs.udp_bound(o.ip, port):
            raise SystemExit(f"udp {o.ip}:{port} is already in use")
    run = Path(tempfile.mkdtemp(prefix=f"{o.peer}-{rate}-{rep}-", dir=o.workdir))
    uas = peer = prof = None
    try:
        uas = spawn(sipp_uas(o, run), run / "uas.out")
        if not wait_listening(o, o.uas_port, uas, 10):
            raise SystemExit("SIPp UAS did not start; see " + str(run / "uas.out"))
        argv = peer_command(o, run)
        if argv is not None:
            peer = spawn(argv, run / "peer.log")
            if not wait_listening(o, o.port, peer, 15):
                log = (run / "peer.log").read_text(errors="replace")[-2000:]
                raise SystemExit(f"peer did not listen on {o.ip}:{o.port}\n{log}")
            time.sleep(1.0)
            prof = start_profiler(o, peer.pid, rate, rep)
        line = measure(o, run, rate, rep, uas, peer)
        finish_profiler(prof)
        prof = None
        return line
    finally:
        stop(prof)
        stop(peer, grace=8.0)  # sipedge drains for server.shutdown_grace (5 s) first
        stop(uas)
        if not o.keep_logs:
            shutil.rmtree(run, ignore_errors=True)


def measure(
    o: Options,
    run: Path,
    rate: int,
    rep: int,
    uas: subprocess.Popen[bytes],
    peer: subprocess.Popen[bytes] | None,
) -> str:
    """Drive the UAC, account CPU and drops over its lifetime, and format the RESULT line."""
    calls = rate * o.duration
    load = procfs.load1()
    drops0, (busy0, soft0) = procfs.udp_rcvbuf_errors(), procfs.host_ticks()
    snap0, t0 = procfs.snapshot(), time.monotonic()
    uac = spawn(sipp_uac(o, run, rate), run / "uac.out")
    uac_cpu_s = wait_rusage(uac, o.duration + 60)
    wall = time.monotonic() - t0
    snap1, (busy1, soft1) = procfs.snapshot(), procfs.host_ticks()
    drops = procfs.udp_rcvbuf_errors() - drops0
    peer_pid = peer.pid if peer else None
    peer_t = procfs.tree_ticks(snap1, peer_pid) - procfs.tree_ticks(snap0, peer_pid)
    uas_t = procfs.tree_ticks(snap1, uas.pid) - procfs.tree_ticks(snap0, uas.pid)
    peer_pct, uas_pct = procfs.pct(peer_t, wall), procfs.pct(uas_t, wall)
    uac_pct = 100.0 * uac_cpu_s / wall
    busy = procfs.pct(busy1 - busy0, wall)
    mine = {os.getpid(), uac.pid} | procfs.tree(snap1, uas.pid)
    mine |= procfs.tree(snap1, peer_pid) if peer_pid else set()
    others = procfs.busiest_others(snap0, snap1, mine, wall)
    st = read_stats(str(run / "uac.csv"), calls) if (run / "uac.csv").exists() else None
    created, ok, failed, retrans = (st.created, st.ok, st.failed, st.retrans) if st else (0,) * 4
    achieved, elapsed = (st.achieved, st.elapsed) if st else (0.0, wall)
    passed = (
        created >= calls
        and achieved >= 0.97 * rate
        and failed <= 0.001 * calls
        and retrans <= 0.01 * calls
    )
    other = max(busy - peer_pct - uac_pct - uas_pct, 0.0)
    busiest = ",".join(f"{name.replace(' ', '_')}:{p:.0f}%" for name, p in others) or "-"
    return (
        f"RESULT peer={o.tag} scen=call target={rate} rep={rep} achieved={achieved:.1f} "
        f"calls={created} ok={ok} failed={failed} retrans={retrans} "
        f"unexp={count_unexpected(run)} udp_drops={drops} peer_cpu={peer_pct:.0f}% "
        f"peer_cpu_s={peer_t / procfs.HZ:.2f} uac_cpu={uac_pct:.0f}% uas_cpu={uas_pct:.0f}% "
        f"host_busy={busy:.0f}% softirq={procfs.pct(soft1 - soft0, wall):.0f}% "
        f"other={other:.0f}% load1={load:.2f} busiest_other={busiest} "
        f"elapsed={elapsed:.1f}s sipp_rc={uac.returncode} {'PASS' if passed else 'FAIL'}"
    )


def main(argv: list[str] | None = None) -> None:
    """Run every rate x repeat for one peer; stop after ``--stop-after`` FAILs in a row."""
    o = parse_args(argv)
    o.workdir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    fails = 0
    for rate in o.rates:
        for rep in range(1, o.repeat + 1):
            line = run_one(o, rate, rep)
            print(line, flush=True)
            fails = fails + 1 if line.endswith("FAIL") else 0
            if fails >= o.stop_after:
                print(f"# {o.peer}: {fails} FAILs in a row, stopping", file=sys.stderr)
                return
            time.sleep(1.0)


if __name__ == "__main__":
    main()
