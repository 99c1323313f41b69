"""Read CPU time, process trees and UDP counters from Linux /proc for the call-rate bench.

All CPU figures are in clock ticks (``os.sysconf("SC_CLK_TCK")`` per second); callers turn
them into "% of one core" over a wall-clock window with :func:`pct`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

HZ = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Proc:
    """One process: parent pid, command name, utime+stime so far, and that of reaped children."""

    ppid: int
    comm: str
    ticks: int
    child_ticks: int


def snapshot() -> dict[int, Proc]:
    """Every live process, keyed by pid (processes that vanish while read are skipped)."""
    procs: dict[int, Proc] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                raw = f.read().decode("ascii", "replace")
        except OSError:
            continue
        # "pid (comm) state ppid ..." -- comm may hold spaces and parentheses
        lpar, rpar = raw.find("("), raw.rfind(")")
        fields = raw[rpar + 2 :].split()
        # after comm: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
        ticks = int(fields[11]) + int(fields[12])
        reaped = int(fields[13]) + int(fields[14])
        procs[int(name)] = Proc(int(fields[1]), raw[lpar + 1 : rpar], ticks, reaped)
    return procs


def tree(procs: dict[int, Proc], root: int) -> set[int]:
    """``root`` and all its descendants present in ``procs``."""
    children: dict[int, list[int]] = {}
    for pid, p in procs.items():
        children.setdefault(p.ppid, []).append(pid)
    found: set[int] = set()
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in procs and pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    return found


def tree_ticks(procs: dict[int, Proc], root: int | None) -> int:
    """utime+stime of ``root``'s process tree (0 when there is no root)."""
    if root is None:
        return 0
    return sum(procs[pid].ticks for pid in tree(procs, root))


def host_ticks() -> tuple[int, int]:
    """(busy, softirq) ticks of the whole machine from the ``cpu`` line of /proc/stat."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu "):
                v = [int(x) for x in line.split()[1:]]
                # user nice system idle iowait irq softirq steal ...
                busy = v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)
                return busy, v[6]
    return 0, 0


def udp_rcvbuf_errors() -> int:
    """Host-wide count of UDP datagrams dropped on full socket receive buffers."""
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Udp:")]
    names, values = rows[0], rows[1]
    return int(values[names.index("RcvbufErrors")])


def load1() -> float:
    """The one-minute load average."""
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def udp_bound(ip: str, port: int) -> bool:
    """True when some socket is bound to udp ``ip:port`` (or to the wildcard on ``port``)."""
    want = {f"{_hex_ip(ip)}:{port:04X}", f"00000000:{port:04X}"}
    with open("/proc/net/udp") as f:
        next(f)
        return any(line.split()[1] in want for line in f)


def _hex_ip(ip: str) -> str:
    """/proc/net/udp spelling of an IPv4 address (little-endian hex)."""
    return "".join(f"{int(b):02X}" for b in reversed(ip.split(".")))


def pct(ticks: int, wall: float) -> float:
    """``ticks`` over ``wall`` seconds as a percentage of one core."""
    return 100.0 * ticks / HZ / max(wall, 1e-3)


def busiest_others(
    before: dict[int, Proc], after: dict[int, Proc], exclude: set[int], wall: float, top: int = 3
) -> list[tuple[str, float]]:
    """The ``top`` processes outside ``exclude`` that used the most CPU between two snapshots.

    A process's share includes its children that exited and were reaped in the window (so a
    shell running short test processes shows up); what such children had used before the
    window (seen in ``before``) is not counted.
    """
    gone: dict[int, int] = {}  # live pid -> ticks its exited descendants had already used
    for pid, p in before.items():
        if pid not in after:
            heir = p.ppid  # nearest ancestor still alive: it reaped them, directly or not
            while heir in before and heir not in after:
                heir = before[heir].ppid
            gone[heir] = gone.get(heir, 0) + p.ticks + p.child_ticks
    used: list[tuple[str, float]] = []
    for pid, p in after.items():
        if pid in exclude:
            continue
        old = before.get(pid)
        start = old.ticks + old.child_ticks + gone.get(pid, 0) if old and old.comm == p.comm else 0
        share = pct(p.ticks + p.child_ticks - start, wall)
        if share >= 1.0:
            used.append((p.comm, share))
    used.sort(key=lambda x: -x[1])
    return used[:top]
