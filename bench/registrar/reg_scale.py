"""Memory per binding with 100,000 registered AORs, then calls routed to them.

Not a test. One fresh registrar (sipedge or Kamailio) on a loopback address, REGISTER
without credentials (sipedge trusts 127/8; Kamailio's config without WITH_AUTH does not
challenge), one binding per AOR:

1. warm-up: 200 AORs ``w<i>`` (first-use allocations out of the way), then memory "before";
2. ``--bindings`` AORs ``u1..uN`` at ``--reg-rate`` (RESULT line ``scen=register``), memory
   "after-reg" at once and "after" once ``--settle`` s have passed (> 64*T1 = 32 s, so no
   REGISTER transaction is left in sipedge);
3. calls to random AORs through the registrar (``--call-rate`` x ``--call-duration``; RESULT
   ``scen=call-lookup``); the Contact is the SIPp UAS, so every call must reach it;
4. a traced run (``--verify-calls``, 50/s) whose UAS log is checked: every INVITE the UAS got
   must carry, as Request-URI user, the To user the UAC dialled (VERIFY line).

Memory: sipedge = VmRSS of its process after a full ``gc.collect()`` (asked through
``mem_probe.py`` with SIGUSR1, which also reports objects and an estimate of the Python
objects per binding); Kamailio = ``core.shmmem`` real_used (usrloc lives in shared memory)
and the Pss/Rss sums of its processes. MEMORY line = growth from "before" to "after" / N.

    .venv/bin/python bench/registrar/reg_scale.py --peer sipedge
    .venv/bin/python bench/registrar/reg_scale.py --peer kamailio --call-rate 0
"""

from __future__ import annotations

import argparse
import json
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
from typing import Any

import peers  # puts bench/ on sys.path for call_rate
import uacrun

from call_rate import spawn, stop

SCEN = peers.HERE / "scenarios"
UAS_SCENARIO = peers.BENCH / "scenarios" / "uas_call.xml"  # bench/call_rate.py's callee


@dataclass(frozen=True)
class Options:
    """The command line, parsed."""

    peer: str
    bindings: int
    reg_rate: int
    settle: float
    call_rate: int
    call_duration: int
    verify_calls: int
    persist: bool
    site: peers.Site
    keep_logs: bool
    tag: str


def parse_args(argv: list[str] | None = None) -> Options:
    """Parse and check the command line (loopback addresses only)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--peer", choices=peers.PEERS, default="sipedge")
    ap.add_argument("--bindings", type=int, default=100_000, help="AORs to register (100000)")
    ap.add_argument("--reg-rate", type=int, default=2000, help="REGISTER/s while filling (2000)")
    ap.add_argument("--settle", type=float, default=40.0, help="s before 'after' (40)")
    ap.add_argument("--call-rate", type=int, default=300, help="calls/s, 0 = no calls (300)")
    ap.add_argument("--call-duration", type=int, default=10, help="s of calls (10)")
    ap.add_argument("--verify-calls", type=int, default=200, help="traced calls, 0 = none")
    ap.add_argument("--persist", action="store_true", help="sipedge: registrar.persist = true")
    ap.add_argument("--ip", default="127.0.0.6")
    ap.add_argument("--port", type=int, default=5060)
    ap.add_argument("--uac-port", type=int, default=5061)
    ap.add_argument("--uas-port", type=int, default=5070)
    ap.add_argument("--keep-logs", action="store_true")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/sipedge-bench/registrar"))
    ap.add_argument("--tag", help="name for the peer= field (default: --peer)")
    a = ap.parse_args(argv)
    peers.check_loopback(a.ip)
    a.workdir.mkdir(parents=True, exist_ok=True)
    run = Path(tempfile.mkdtemp(prefix=f"scale-{a.peer}-", dir=a.workdir))
    site = peers.Site(a.ip, a.port, a.uac_port, a.uas_port, run)
    return Options(
        a.peer, a.bindings, a.reg_rate, a.settle, a.call_rate, a.call_duration,
        a.verify_calls, a.persist, site, a.keep_logs, a.tag or a.peer,
    )  # fmt: skip


def emit(line: str) -> None:
    """One output line (stdout, flushed)."""
    print(line, flush=True)


def sipp(site: peers.Site, run: Path, *args: str) -> list[str]:
    """argv of a SIPp UAC from ``site.uac_port``, files in ``run``."""
    return ["sipp", *args, "-i", site.ip, "-p", str(site.uac_port), *peers.SIPP_COMMON,
            *uacrun.uac_files(run)]  # fmt: skip


def register(o: Options, peer: subprocess.Popen[bytes], prefix: str, n: int, rate: int) -> str:
    """Register AORs ``<prefix>1..<prefix>n`` (Contact at the UAS port); the measured fields."""
    s = o.site
    run = s.work / f"reg-{prefix}"
    run.mkdir()
    argv = sipp(s, run, f"{s.ip}:{s.port}", "-sf", str(SCEN / "reg_plain.xml"),
                "-key", "prefix", prefix, "-key", "cport", str(s.uas_port),
                "-r", str(rate), "-m", str(n), "-timeout", f"{n // rate + 60}s")  # fmt: skip
    return uacrun.drive(uacrun.Load(argv, n, rate, n / rate + 90), run, s, peer)


def memory(o: Options, peer: subprocess.Popen[bytes], label: str) -> dict[str, Any]:
    """Memory of the peer now, as a dict (also printed as a MEM line)."""
    if o.peer == "sipedge":
        mem = _probe(o, peer)
        mem["vmrss_kb"] = peers.vmrss_kb(peer.pid)
        if label != "after":
            mem.pop("sample", None)  # the per-binding estimate is wanted once
    else:
        shm = peers.kamailio_shm(o.site)
        mem = {f"shm_{k}": v for k, v in shm.items() if k in ("real_used", "used", "fragments")}
        mem.update(peers.tree_memory_kb(peer.pid))
        count = peers.kamailio_stat(o.site, "usrloc:location_contacts")
        mem["bindings"] = count if count is not None else -1
    flat = " ".join(f"{k}={v}" for k, v in mem.items() if not isinstance(v, dict))
    emit(f"MEM peer={o.tag} label={label} {flat}")
    return mem


def _probe(o: Options, peer: subprocess.Popen[bytes]) -> dict[str, Any]:
    """Ask mem_probe.py (SIGUSR1) for a report after a full collection; wait for it."""
    out = o.site.work / "mem_probe.json"
    out.unlink(missing_ok=True)
    os.kill(peer.pid, signal.SIGUSR1)
    deadline = time.monotonic() + 60
    while not out.exists():
        if time.monotonic() > deadline or peer.poll() is not None:
            raise SystemExit("mem_probe.py did not answer SIGUSR1")
        time.sleep(0.1)
    report: dict[str, Any] = json.loads(out.read_text())
    return report


def growth(o: Options, before: dict[str, Any], after: dict[str, Any]) -> str:
    """The MEMORY line: growth from ``before`` to ``after`` per registered binding."""
    n = after.get("bindings", 0) - before.get("bindings", 0)
    per = max(n, 1)
    head = f"MEMORY peer={o.tag} bindings_added={n}"
    if o.peer == "sipedge":
        rss = after["vmrss_kb"] - before["vmrss_kb"]
        objs = after["gc_objects"] - before["gc_objects"]
        est = after.get("sample", {}).get("total", "nan")
        live = after["pymalloc_used_bytes"] - before["pymalloc_used_bytes"]
        arenas = after["pymalloc_arena_bytes"] - before["pymalloc_arena_bytes"]
        return (
            f"{head} vmrss_growth_kb={rss} bytes_per_binding={rss * 1024 / per:.0f} "
            f"pymalloc_live_per_binding={live / per:.0f} "
            f"pymalloc_arenas_per_binding={arenas / per:.0f} "
            f"gc_objects_per_binding={objs / per:.1f} python_objects_bytes_per_binding={est}"
        )
    shm = after["shm_real_used"] - before["shm_real_used"]
    pss = after["pss_kb"] - before["pss_kb"]
    return (
        f"{head} shm_real_used_growth={shm} bytes_per_binding={shm / per:.0f} "
        f"pss_growth_kb={pss} pss_bytes_per_binding={pss * 1024 / per:.0f}"
    )


def calls(o: Options, peer: subprocess.Popen[bytes], callees: Path, rate: int, n: int,
          name: str, trace: bool) -> tuple[str, Path]:  # fmt: skip
    """``n`` calls at ``rate`` to random AORs of ``callees``; (measured fields, run dir)."""
    s = o.site
    run = s.work / name
    run.mkdir()
    uas_argv = ["sipp", "-sf", str(UAS_SCENARIO), "-i", s.ip, "-p", str(s.uas_port),
                *peers.SIPP_COMMON, "-timeout", f"{n // rate + 70}s",
                "-trace_err", "-error_file", str(run / "uas_err.log")]  # fmt: skip
    if trace:
        uas_argv += ["-trace_msg", "-message_file", str(run / "uas_msg.log")]
    uas = spawn(uas_argv, run / "uas.out")
    try:
        if not peers.wait_udp(s.ip, s.uas_port, uas, 10):
            raise SystemExit(f"SIPp UAS did not start; see {run / 'uas.out'}")
        argv = sipp(s, run, f"{s.ip}:{s.port}", "-sf", str(SCEN / "uac_aor.xml"),
                    "-inf", str(callees), "-r", str(rate), "-m", str(n), "-d", "1000",
                    "-timeout", f"{n // rate + 40}s")  # fmt: skip
        return uacrun.drive(uacrun.Load(argv, n, rate, n / rate + 60), run, s, peer, uas), run
    finally:
        stop(uas)


INVITE = re.compile(r"^INVITE sip:([^@\s]+)@", re.M)
TO_USER = re.compile(r"^To:[^\r\n]*?<sip:([^@>]+)@", re.M | re.I)


def verify(log: Path) -> str:
    """Every INVITE the UAS received: Request-URI user (from the binding) == To user
    (the AOR dialled). Returns the VERIFY fields."""
    text = log.read_text(errors="replace") if log.exists() else ""
    ok = bad = 0
    aors: set[str] = set()
    for block in text.split("\n\n"):
        head = block.lstrip()
        m = INVITE.match(head)
        if m is None:
            continue
        to = TO_USER.search(head)
        if to is not None and to.group(1) == m.group(1):
            ok += 1
            aors.add(m.group(1))
        else:
            bad += 1
    return f"invites={ok + bad} ruri_user_eq_to_user={ok} mismatch={bad} distinct_aors={len(aors)}"


def scenario(o: Options, peer: subprocess.Popen[bytes]) -> None:
    """Steps 1-4 of the module docstring, printing as it goes."""
    emit(f"RESULT peer={o.tag} scen=warm-up target=200 rep=1 " + register(o, peer, "w", 200, 200))
    time.sleep(2.0)
    before = memory(o, peer, "before")
    fields = register(o, peer, "u", o.bindings, o.reg_rate)
    emit(f"RESULT peer={o.tag} scen=register target={o.reg_rate} rep=1 {fields}")
    memory(o, peer, "after-reg")
    time.sleep(o.settle)
    after = memory(o, peer, "after")
    emit(growth(o, before, after))
    if o.peer == "sipedge" and "sample" in after:
        emit(f"OBJECTS peer={o.tag} " + json.dumps(after["sample"], separators=(",", ":")))
    callees = o.site.work / "callees.csv"
    callees.write_text("RANDOM\n" + "".join(f"u{i}\n" for i in range(1, o.bindings + 1)))
    if o.call_rate > 0:
        n = o.call_rate * o.call_duration
        fields, _ = calls(o, peer, callees, o.call_rate, n, "calls", trace=False)
        emit(f"RESULT peer={o.tag} scen=call-lookup target={o.call_rate} rep=1 {fields}")
        time.sleep(3.0)
        memory(o, peer, "after-calls")
    if o.verify_calls > 0:
        fields, run = calls(o, peer, callees, 50, o.verify_calls, "verify", trace=True)
        emit(f"RESULT peer={o.tag} scen=call-verify target=50 rep=1 {fields}")
        emit(f"VERIFY peer={o.tag} {verify(run / 'uas_msg.log')}")


def main(argv: list[str] | None = None) -> None:
    """Start the peer, run the scenario, stop everything by PID."""
    o = parse_args(argv)
    s = o.site
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    peers.ports_free(s, (s.port, s.uac_port, s.uas_port))
    os.environ["SIPEDGE_MEMPROBE_OUT"] = str(s.work / "mem_probe.json")
    argv_ = peers.peer_argv(
        o.peer, s, auth=False, users=0, persist=o.persist, wrapper=peers.MEM_PROBE
    )
    peer = spawn(argv_, s.work / "peer.log")
    try:
        if not peers.wait_udp(s.ip, s.port, peer, 20):
            raise SystemExit(f"{o.peer} did not listen:\n{(s.work / 'peer.log').read_text()}")
        time.sleep(1.0)
        scenario(o, peer)
    finally:
        stop(peer, grace=8.0)
        if not o.keep_logs:
            shutil.rmtree(s.work, ignore_errors=True)
        else:
            print(f"# files kept in {s.work}", file=sys.stderr)


if __name__ == "__main__":
    main()
