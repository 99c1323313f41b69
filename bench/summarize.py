"""Turn ``RESULT`` lines of bench/call_rate.py into markdown tables.

    .venv/bin/python bench/summarize.py results.txt [more.txt ...]   (or RESULT lines on stdin)

Prints (1) one row per (peer, target rate) with medians over the runs and (2) per peer the
highest clean rate, the peer's CPU per 1000 calls/s, and the ratio sipedge / kamailio.

A run is *clean* when it PASSed (all calls created, achieved >= 97 % of target, failed <= 0.1 %,
retransmissions <= 1 %) and had no failed call at all. "Highest clean rate" is the highest
target at which every run was clean; "half of runs" the highest at which at least half of the
runs were clean; "best single run" the highest with at least one clean run. CPU per 1000 cps is
the peer's CPU time per call, as % of one core at 1000 calls/s (peer_cpu_s / calls x 1e5), the
median over the peer's clean runs.
"""

from __future__ import annotations

import re
import statistics
import sys
from collections.abc import Iterable

Run = dict[str, str]
FIELD = re.compile(r"(\w+)=(\S+)")


def parse(lines: Iterable[str]) -> list[Run]:
    """The RESULT lines among ``lines``, as field dictionaries plus ``verdict``."""
    runs = []
    for line in lines:
        if line.startswith("RESULT "):
            run = dict(FIELD.findall(line))
            run["verdict"] = line.split()[-1]
            runs.append(run)
    return runs


def num(run: Run, key: str) -> float:
    """A numeric field with its unit (``%``, ``s``) removed; NaN when absent."""
    value = run.get(key)
    return float(value.rstrip("%s")) if value else float("nan")


def clean(run: Run) -> bool:
    """PASS and not a single failed call."""
    return run["verdict"] == "PASS" and num(run, "failed") == 0


def cpu_per_kcps(run: Run) -> float:
    """Peer CPU as % of one core per 1000 calls/s (CPU seconds per call x 1e5)."""
    calls = num(run, "calls")
    return num(run, "peer_cpu_s") / calls * 1e5 if calls > 0 else float("nan")


def other_load(run: Run) -> float:
    """% of a core used by the busiest processes that are not part of the bench."""
    busiest = run.get("busiest_other", "-")
    return sum(float(x.rsplit(":", 1)[1].rstrip("%")) for x in busiest.split(",") if ":" in x)


def groups(runs: list[Run]) -> dict[tuple[str, int], list[Run]]:
    """Runs grouped by (peer, target): peers in first-seen order, targets ascending."""
    out: dict[tuple[str, int], list[Run]] = {}
    for run in runs:
        out.setdefault((run["peer"], int(run["target"])), []).append(run)
    order = {peer: i for i, peer in enumerate(dict.fromkeys(r["peer"] for r in runs))}
    return dict(sorted(out.items(), key=lambda kv: (order[kv[0][0]], kv[0][1])))


def median(runs: list[Run], key: str) -> float:
    """Median of a numeric field over ``runs``."""
    return statistics.median(num(r, key) for r in runs)


def rate_table(runs: list[Run]) -> list[str]:
    """One markdown row per (peer, target) with medians."""
    out = [
        "| peer | target cps | runs | achieved | failed | retrans | udp drops | peer CPU % "
        "| CPU %/1000 cps | SIPp UAC % | SIPp UAS % | other load % | clean |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (peer, target), rs in groups(runs).items():
        per_k = statistics.median(cpu_per_kcps(r) for r in rs)
        load = statistics.median(other_load(r) for r in rs)
        out.append(
            f"| {peer} | {target} | {len(rs)} | {median(rs, 'achieved'):.0f} "
            f"| {median(rs, 'failed'):.0f} | {median(rs, 'retrans'):.0f} "
            f"| {median(rs, 'udp_drops'):.0f} | {median(rs, 'peer_cpu'):.0f} | {per_k:.0f} "
            f"| {median(rs, 'uac_cpu'):.0f} | {median(rs, 'uas_cpu'):.0f} | {load:.0f} "
            f"| {sum(map(clean, rs))}/{len(rs)} |"
        )
    return out


def best(runs: list[Run], peer: str) -> tuple[int, int, int, float]:
    """Highest target (all runs, at least half, any run) clean; median CPU per 1000 cps."""
    by_rate = {t: rs for (p, t), rs in groups(runs).items() if p == peer}
    share = {t: sum(map(clean, rs)) / len(rs) for t, rs in by_rate.items()}
    per_k = [cpu_per_kcps(r) for r in runs if r["peer"] == peer and clean(r)]
    return (
        max((t for t, f in share.items() if f == 1.0), default=0),
        max((t for t, f in share.items() if f >= 0.5), default=0),
        max((t for t, f in share.items() if f > 0.0), default=0),
        statistics.median(per_k) if per_k else float("nan"),
    )


def headline(runs: list[Run]) -> list[str]:
    """Highest clean rate and CPU per 1000 cps per peer, and sipedge / kamailio."""
    peers = list(dict.fromkeys(r["peer"] for r in runs))
    out = [
        "| peer | highest clean rate: all runs | half of runs | best single run | CPU %/1000 cps |",
        "|---|---|---|---|---|",
    ]
    result = {p: best(runs, p) for p in peers}
    for peer, (every, half, single, per_k) in result.items():
        out.append(f"| {peer} | {every} | {half} | {single} | {per_k:.0f} |")
    s, k = result.get("sipedge"), result.get("kamailio")
    if s and k and all(k[:3]):
        out.append("")
        out.append(
            f"sipedge / kamailio clean rate: {s[0] / k[0]:.2f} (all runs), {s[1] / k[1]:.2f} "
            f"(half of runs), {s[2] / k[2]:.2f} (best single runs); "
            f"CPU per call: sipedge {s[3] / k[3]:.1f}x Kamailio's"
        )
    return out


def main(argv: list[str]) -> None:
    """Read the files named in ``argv`` (stdin without any) and print both tables."""
    lines: list[str] = []
    if argv:
        for path in argv:
            with open(path) as f:
                lines.extend(f)
    else:
        lines.extend(sys.stdin)
    runs = parse(lines)
    if not runs:
        raise SystemExit("no RESULT lines")
    print("\n".join(rate_table(runs)))
    print()
    print("\n".join(headline(runs)))


if __name__ == "__main__":
    main(sys.argv[1:])
