"""Digest-authenticated REGISTER rate: sipedge or Kamailio as registrar, at rising rates.

Not a test. For each rate (and repeat) it starts, on a loopback address only, the registrar
fresh in the foreground (users a<i>/p<i>x, i = 1..--users, no trusted source), then a SIPp
UAC running ``rate x duration`` registrations, each REGISTER -> 401 -> REGISTER with
Authorization -> 200 (one SIPp "call" = both round trips), users taken in turn. It prints one
``RESULT ...`` line per run, in the format of bench/call_rate.py (so bench/summarize.py makes
the tables), and kills everything it started, by PID, at the end of each run.

    .venv/bin/python bench/registrar/reg_rate.py --peer sipedge  --rates "500 1000 2000"
    .venv/bin/python bench/registrar/reg_rate.py --peer kamailio --rates "8000 10000 12000"
    .venv/bin/python bench/registrar/reg_rate.py --peer sipedge --profile /tmp/prof --rates 1000
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import peers  # bench/registrar/peers.py; it puts bench/ on sys.path for call_rate
import uacrun

from call_rate import spawn, stop

SCENARIO = peers.HERE / "scenarios" / "reg_auth.xml"


@dataclass(frozen=True)
class Options:
    """The command line, parsed."""

    peer: str
    rates: list[int]
    duration: int
    repeat: int
    ip: str
    port: int
    uac_port: int
    users: int
    persist: bool
    security: bool
    gc_probe: bool
    stop_after: int
    keep_logs: bool
    workdir: Path
    profile: Path | None
    tag: str


def parse_args(argv: list[str] | None = None) -> Options:
    """Parse and check the command line (loopback addresses only)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--peer", choices=peers.PEERS, default="sipedge")
    ap.add_argument("--rates", default="1000", help="target registrations/s, space/comma list")
    ap.add_argument("--duration", type=int, default=15, help="seconds of load per run (15)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per rate (1)")
    ap.add_argument("--ip", default="127.0.0.6", help="loopback address for everything")
    ap.add_argument("--port", type=int, default=5060, help="registrar UDP port (5060)")
    ap.add_argument("--uac-port", type=int, default=5061)
    ap.add_argument("--users", type=int, default=10_000, help="subscribers a1..aN (10000)")
    ap.add_argument(
        "--persist",
        action="store_true",
        help="sipedge: registrar.persist = true (SQLite write per REGISTER; default off, "
        "like Kamailio's usrloc db_mode 0)",
    )
    ap.add_argument(
        "--security",
        action="store_true",
        help="sipedge: keep the [security] checks on (flood threshold out of reach); "
        "default off, like Kamailio's config (no pike)",
    )
    ap.add_argument(
        "--gc-probe",
        action="store_true",
        help="sipedge: run it under bench/gc_probe.py and print a GC line (pauses) per run",
    )
    ap.add_argument("--stop-after", type=int, default=2, help="stop after N FAILs in a row (2)")
    ap.add_argument("--keep-logs", action="store_true", help="keep per-run SIPp/peer files")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/sipedge-bench/registrar"))
    ap.add_argument("--profile", type=Path, metavar="DIR", help="py-spy sipedge into DIR")
    ap.add_argument("--tag", help="name for the peer= field of RESULT lines (default: --peer)")
    a = ap.parse_args(argv)
    peers.check_loopback(a.ip)
    rates = [int(r) for r in a.rates.replace(",", " ").split()]
    return Options(
        a.peer, rates, a.duration, a.repeat, a.ip, a.port, a.uac_port, a.users, a.persist,
        a.security, a.gc_probe, a.stop_after, a.keep_logs, a.workdir, a.profile, a.tag or a.peer,
    )  # fmt: skip


def sipp_uac(o: Options, run: Path, rate: int, users_csv: Path) -> list[str]:
    """argv of the SIPp UAC: ``rate x duration`` digest registrations to the registrar."""
    return [
        "sipp", f"{o.ip}:{o.port}", "-sf", str(SCENARIO), "-inf", str(users_csv),
        "-i", o.ip, "-p", str(o.uac_port), "-r", str(rate), "-m", str(rate * o.duration),
        *peers.SIPP_COMMON, "-timeout", f"{o.duration + 40}s", *uacrun.uac_files(run),
    ]  # fmt: skip


def start_profiler(o: Options, pid: int, rate: int, rep: int) -> subprocess.Popen[bytes] | None:
    """py-spy sampling sipedge (``--profile``) into DIR/reg-<rate>-<rep>.txt; else None."""
    if o.profile is None or o.peer != "sipedge":
        return None
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    o.profile.mkdir(parents=True, exist_ok=True)
    out = o.profile / f"reg-{rate}-{rep}.txt"
    argv = [pyspy, "record", "--pid", str(pid), "--rate", "250", "--format", "raw",
            "--nonblocking", "--output", str(out)]  # fmt: skip
    return spawn(argv, o.profile / f"py-spy-reg-{rate}-{rep}.log")


def finish_profiler(prof: subprocess.Popen[bytes] | None) -> None:
    """Make py-spy write its file (SIGINT) and wait for it."""
    if prof is None:
        return
    os.kill(prof.pid, signal.SIGINT)
    try:
        prof.wait(timeout=30)
    except subprocess.TimeoutExpired:
        stop(prof)


def gc_line(o: Options, rate: int, rep: int, log: Path) -> str | None:
    """The GC line from gc_probe.py's report at the end of ``log`` (None without one):
    per generation ``collections/total ms/longest ms`` over the process's life."""
    text = log.read_text(errors="replace") if log.exists() else ""
    gens = re.findall(r"gc (gen\d): (\d+) collections, total (\d+) ms, longest ([\d.]+) ms", text)
    tracked = re.search(r"gc tracked objects at exit: (\d+)", text)
    if not gens:
        return None
    fields = " ".join(f"{g}={n}/{t}ms/{longest}ms" for g, n, t, longest in gens)
    at_exit = tracked.group(1) if tracked else "?"
    return f"GC peer={o.tag} target={rate} rep={rep} {fields} tracked_at_exit={at_exit}"


def run_one(o: Options, rate: int, rep: int) -> list[str]:
    """One run at ``rate``; returns its RESULT line (and GC line with ``--gc-probe``)."""
    run = Path(tempfile.mkdtemp(prefix=f"{o.tag}-{rate}-{rep}-", dir=o.workdir))
    site = peers.Site(o.ip, o.port, o.uac_port, 0, run)
    peers.ports_free(site, (o.port, o.uac_port))
    peer = prof = None
    try:
        wrapper = peers.GC_PROBE if o.gc_probe and o.peer == "sipedge" else ""
        argv = peers.peer_argv(
            o.peer, site, auth=True, users=o.users, persist=o.persist,
            security=o.security, wrapper=wrapper,
        )  # fmt: skip
        users_csv = peers.sipp_users(run / "users.csv", o.users)
        peer = spawn(argv, run / "peer.log")
        if not peers.wait_udp(o.ip, o.port, peer, 20):
            log = (run / "peer.log").read_text(errors="replace")[-2000:]
            raise SystemExit(f"{o.peer} did not listen on {o.ip}:{o.port}\n{log}")
        time.sleep(1.0)
        prof = start_profiler(o, peer.pid, rate, rep)
        load = uacrun.Load(
            sipp_uac(o, run, rate, users_csv), rate * o.duration, rate, o.duration + 60
        )
        line = f"RESULT peer={o.tag} scen=reg-auth target={rate} rep={rep} "
        line += uacrun.drive(load, run, site, peer)
        finish_profiler(prof)
        prof = None
        stop(peer, grace=8.0)  # sipedge drains for server.shutdown_grace (5 s) first
        peer = None
        gc = gc_line(o, rate, rep, run / "peer.log")
        return [line] if gc is None else [line, gc]
    finally:
        stop(prof)
        stop(peer, grace=8.0)
        if not o.keep_logs:
            shutil.rmtree(run, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    """Run every rate x repeat for one peer; stop after ``--stop-after`` FAILs in a row."""
    o = parse_args(argv)
    o.workdir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    fails = 0
    for rate in o.rates:
        for rep in range(1, o.repeat + 1):
            lines = run_one(o, rate, rep)
            print("\n".join(lines), flush=True)
            line = lines[0]
            fails = fails + 1 if line.endswith("FAIL") else 0
            if fails >= o.stop_after:
                print(f"# {o.tag}: {fails} FAILs in a row, stopping", file=sys.stderr)
                return
            time.sleep(1.0)


if __name__ == "__main__":
    main()
