"""Where sipedge's time goes under REGISTER load: a py-spy raw profile by subsystem.

    .venv/bin/python bench/registrar/reg_profile.py PROFILE.txt

Each sample is charged to its innermost sipedge frame (frames of the standard library or of
a dependency go to the sipedge code that called them, e.g. ``hmac`` to the digest code), and
that frame's file to a subsystem below. Samples with no sipedge frame above the command line
and ``app.serve`` are the event loop itself (uvloop's C loop, receiving datagrams). Prints
the subsystems as % of the samples (of sipedge's busy CPU time: py-spy records non-idle
samples only), then the top sipedge functions so charged.
"""

from __future__ import annotations

import argparse
from collections import Counter

import peers  # noqa: F401  (puts bench/ on sys.path for profile_summary)

from profile_summary import frame_key

# (file prefix under sipedge/, subsystem); first match wins.
SUBSYSTEMS: tuple[tuple[str, str], ...] = (
    ("sipedge/sip/digest.py", "digest: nonces, HA1/response hashes"),
    ("sipedge/auth/", "auth service and credential store"),
    ("sipedge/sip/parser.py", "parsing"),
    ("sipedge/sip/hdr/", "parsing"),
    ("sipedge/sip/uri.py", "parsing"),
    ("sipedge/sip/params.py", "parsing"),
    ("sipedge/sip/_scan.py", "parsing"),
    ("sipedge/sip/framing.py", "parsing"),
    ("sipedge/sip/message.py", "message objects: header access, serialising"),
    ("sipedge/sip/build.py", "building responses"),
    ("sipedge/sip/transaction/", "transaction layer (create, match, timers)"),
    ("sipedge/registrar/", "registrar and location store"),
    ("sipedge/proxy/", "proxy core and router"),
    ("sipedge/runtime/", "engine: dispatch, timers, tasks"),
    ("sipedge/transport/", "transport: send/receive"),
)
LOOP = "event loop outside sipedge (uvloop C code incl. recvfrom)"
# The command line and the composition root sit at the bottom of every stack: not charged.
OUTER = ("sipedge/__main__.py", "sipedge/cli.py", "sipedge/app.py")


def short(path: str) -> str:
    """``sipedge/...`` part of a source path, else the path."""
    i = path.find("sipedge/")
    return path[i:] if i >= 0 else path


def subsystem(file: str) -> str | None:
    """The subsystem of a sipedge source file, or None for code outside sipedge."""
    name = short(file)
    if not name.startswith("sipedge/") or name.startswith(OUTER):
        return None
    for prefix, label in SUBSYSTEMS:
        if name.startswith(prefix):
            return label
    return "other sipedge code"


def load(path: str) -> tuple[Counter[str], Counter[str], int]:
    """(samples per subsystem, samples per charged function, total samples)."""
    systems: Counter[str] = Counter()
    funcs: Counter[str] = Counter()
    total = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            total += n
            for frame in reversed(stack.split(";")):
                func, file = frame_key(frame)
                label = subsystem(file)
                if label is not None:
                    systems[label] += n
                    funcs[f"`{func}` ({short(file)})"] += n
                    break
            else:
                systems[LOOP] += n
    return systems, funcs, total


def main() -> None:
    """Print both tables."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("profile")
    ap.add_argument("--top", type=int, default=15)
    a = ap.parse_args()
    systems, funcs, total = load(a.profile)
    if not total:
        raise SystemExit("empty profile")
    print(f"{total} samples\n\n| subsystem | % of busy CPU |\n|---|---|")
    for label, n in systems.most_common():
        print(f"| {label} | {100.0 * n / total:.1f} |")
    print("\n| function (callees outside sipedge included) | % |\n|---|---|")
    for name, n in funcs.most_common(a.top):
        print(f"| {name} | {100.0 * n / total:.1f} |")


if __name__ == "__main__":
    main()
