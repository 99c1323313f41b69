"""Run one SIPp UAC against the peer and account for it: the RESULT line of bench/registrar.

The measuring half of bench/call_rate.py's ``measure``, for any UAC scenario: CPU of the
peer (and of a SIPp UAS, if any) from /proc over the UAC's lifetime, the UAC's own CPU from
``wait4``, host-wide UDP receive-buffer drops and the peer socket's own drops, the SIPp
counters, and the PASS rule of call_rate.py (all calls created, achieved >= 97 % of target,
failed <= 0.1 %, retransmissions <= 1 %). Field names match call_rate.py's, so
bench/summarize.py reads these lines too.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import peers  # puts bench/ on sys.path for the three below

import procfs
from call_rate import count_unexpected, spawn, stop, wait_rusage
from sipp_csv import read_stats


@dataclass(frozen=True)
class Load:
    """One UAC run: its argv (with ``-trace_stat -stf RUN/uac.csv`` and ``-trace_err
    -error_file RUN/uac_err.log``), the calls and rate it was given, and a timeout."""

    argv: list[str]
    calls: int
    rate: int
    timeout: float


def uac_files(run: Path) -> list[str]:
    """The SIPp options writing the stat file and error log the accounting reads."""
    return [
        "-trace_stat", "-stf", str(run / "uac.csv"), "-fd", "1",
        "-trace_err", "-error_file", str(run / "uac_err.log"),
    ]  # fmt: skip


def response_times(path: Path) -> str:
    """Median and 99th percentile of the scenario's response time (``rtd``) as SIPp's
    bucket bounds (``<1ms``: SIPp keeps whole milliseconds), and the count of 500 ms or
    more, from the last row of the stat file."""
    with open(path, encoding="latin-1") as f:
        lines = [ln.rstrip("\r\n").split(";") for ln in f if ln.strip()]
    if len(lines) < 2:
        return "rtd_p50=nan rtd_p99=nan rtd_ge500=nan"
    prefix = "ResponseTimeRepartition1_"
    heads = lines[0]
    buckets = [
        (k[len(prefix) :], int(lines[-1][i])) for i, k in enumerate(heads) if k.startswith(prefix)
    ]
    total = sum(n for _, n in buckets)

    def quantile(q: float) -> str:
        seen = 0
        for bound, n in buckets:
            seen += n
            if total and seen >= q * total:
                return bound + "ms"
        return "nan"

    slow = dict(buckets).get(">=500", 0)
    return f"rtd_p50={quantile(0.5)} rtd_p99={quantile(0.99)} rtd_ge500={slow}"


def drive(
    load: Load,
    run: Path,
    site: peers.Site,
    peer: subprocess.Popen[bytes],
    uas: subprocess.Popen[bytes] | None = None,
) -> str:
    """Run ``load`` to the end and return the measured fields (RESULT line minus its head,
    ``peer= scen= target= rep=``) ending in PASS or FAIL."""
    before = _counters(site)
    snap0, t0 = procfs.snapshot(), time.monotonic()
    uac = spawn(load.argv, run / "uac.out")
    try:
        uac_cpu_s = wait_rusage(uac, load.timeout)
    except BaseException:  # interrupted (SIGTERM -> SystemExit): do not leave SIPp behind
        stop(uac)
        raise
    wall = time.monotonic() - t0
    after = _counters(site)
    snap1 = procfs.snapshot()
    peer_t = procfs.tree_ticks(snap1, peer.pid) - procfs.tree_ticks(snap0, peer.pid)
    uas_pid = uas.pid if uas is not None else None
    uas_t = procfs.tree_ticks(snap1, uas_pid) - procfs.tree_ticks(snap0, uas_pid)
    peer_pct, uas_pct = procfs.pct(peer_t, wall), procfs.pct(uas_t, wall)
    uac_pct = 100.0 * uac_cpu_s / wall
    busy = procfs.pct(after[2] - before[2], wall)
    mine = {os.getpid(), uac.pid} | procfs.tree(snap1, peer.pid)
    mine |= procfs.tree(snap1, uas_pid) if uas_pid else set()
    others = procfs.busiest_others(snap0, snap1, mine, wall)
    csv = run / "uac.csv"
    st = read_stats(str(csv), load.calls) if csv.exists() else None
    created, ok, failed, retrans = (st.created, st.ok, st.failed, st.retrans) if st else (0,) * 4
    achieved, elapsed = (st.achieved, st.elapsed) if st else (0.0, wall)
    passed = (
        created >= load.calls
        and achieved >= 0.97 * load.rate
        and failed <= 0.001 * load.calls
        and retrans <= 0.01 * load.calls
    )
    other = max(busy - peer_pct - uac_pct - uas_pct, 0.0)
    busiest = ",".join(f"{name.replace(' ', '_')}:{p:.0f}%" for name, p in others) or "-"
    rtd = response_times(csv) if csv.exists() else "rtd_p50=nan"
    return (
        f"achieved={achieved:.1f} calls={created} ok={ok} failed={failed} retrans={retrans} "
        f"unexp={count_unexpected(run)} udp_drops={after[0] - before[0]} "
        f"peer_sock_drops={after[1] - before[1]} peer_cpu={peer_pct:.0f}% "
        f"peer_cpu_s={peer_t / procfs.HZ:.2f} uac_cpu={uac_pct:.0f}% uas_cpu={uas_pct:.0f}% "
        f"host_busy={busy:.0f}% softirq={procfs.pct(after[3] - before[3], wall):.0f}% "
        f"other={other:.0f}% load1={before[4]:.2f} busiest_other={busiest} {rtd} "
        f"elapsed={elapsed:.1f}s sipp_rc={uac.returncode} {'PASS' if passed else 'FAIL'}"
    )


def _counters(site: peers.Site) -> tuple[int, int, int, int, float]:
    """(host UDP rcvbuf drops, peer socket drops, host busy ticks, softirq ticks, load1)."""
    busy, soft = procfs.host_ticks()
    return (
        procfs.udp_rcvbuf_errors(),
        peers.socket_drops(site.ip, site.port),
        busy,
        soft,
        procfs.load1(),
    )
