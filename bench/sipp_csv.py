"""Read the statistics file SIPp writes with ``-trace_stat -stf FILE -fd 1``.

The file is ``;``-separated: a header row, then one row per period (1 s) with counters.
Columns ending in ``(C)`` are cumulative; time columns hold ``date<TAB>time<TAB>epoch``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CallStats:
    """What the UAC did over a run."""

    created: int
    ok: int
    failed: int
    retrans: int
    achieved: float  # calls/s while calls were still being created
    elapsed: float  # seconds from SIPp start to its last row


def _epoch(cell: str) -> float:
    return float(cell.split("\t")[-1])


def read_stats(path: str, target_calls: int) -> CallStats:
    """Final counters of a SIPp stat file, plus the call-creation rate.

    The rate is taken from the last row written before all ``target_calls`` calls were
    created, so the tail in which the last calls finish does not dilute it. A file with no
    data rows gives all zeros.
    """
    with open(path, encoding="latin-1") as f:
        lines = [ln.rstrip("\r\n") for ln in f if ln.strip()]
    if len(lines) < 2:
        return CallStats(0, 0, 0, 0, 0.0, 0.0)
    col = {name: i for i, name in enumerate(lines[0].split(";"))}
    rows = [ln.split(";") for ln in lines[1:]]

    def count(row: list[str], name: str) -> int:
        return int(row[col[name]])

    def age(row: list[str]) -> float:
        return _epoch(row[col["CurrentTime"]]) - _epoch(row[col["StartTime"]])

    last = rows[-1]
    created = count(last, "OutgoingCall(C)")
    achieved = created / age(last) if age(last) > 0 else 0.0
    during = [r for r in rows if 0 < count(r, "OutgoingCall(C)") < target_calls and age(r) > 0.5]
    if during:
        achieved = count(during[-1], "OutgoingCall(C)") / age(during[-1])
    return CallStats(
        created=created,
        ok=count(last, "SuccessfulCall(C)"),
        failed=count(last, "FailedCall(C)"),
        retrans=count(last, "Retransmissions(C)"),
        achieved=achieved,
        elapsed=age(last),
    )
