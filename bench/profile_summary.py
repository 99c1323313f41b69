"""Summarise a py-spy ``--format raw`` profile: where sipedge's CPU time goes.

    .venv/bin/python bench/profile_summary.py PROFILE.txt [--top 25]

A raw profile holds one line per distinct stack: ``outer;...;leaf COUNT``, each frame
``function (file:line)``. py-spy records only non-idle samples by default, so percentages
are shares of the CPU time the process actually used. Prints the top functions by self time
and by inclusive time, and the self time grouped by source file.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::\d+)?\)$")


def short_file(path: str) -> str:
    """Trim a source path to something readable (package-relative where possible)."""
    for marker in ("/site-packages/", "/src/", "/lib/python3.11/", "/lib/python3.12/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def frame_key(frame: str) -> tuple[str, str]:
    """(function, short file) of one raw frame, line number dropped."""
    m = FRAME.match(frame.strip())
    if not m:
        return frame.strip(), "?"
    return m["func"], short_file(m["file"])


def load(path: str) -> tuple[Counter[tuple[str, str]], Counter[tuple[str, str]], int]:
    """(self samples, inclusive samples, total samples) per (function, file)."""
    own: Counter[tuple[str, str]] = Counter()
    incl: Counter[tuple[str, str]] = Counter()
    total = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            frames = [frame_key(x) for x in stack.split(";")]
            total += n
            own[frames[-1]] += n
            for key in set(frames):
                incl[key] += n
    return own, incl, total


def table(title: str, counts: Counter[tuple[str, str]], total: int, top: int) -> list[str]:
    """Markdown table of the ``top`` entries of ``counts`` as % of ``total``."""
    out = [f"| {title} | file | % of CPU |", "|---|---|---|"]
    for (func, file), n in counts.most_common(top):
        out.append(f"| `{func}` | {file} | {100.0 * n / total:.1f} |")
    return out


def main() -> None:
    """Print the self, inclusive and per-file tables."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("profile")
    ap.add_argument("--top", type=int, default=25)
    a = ap.parse_args()
    own, incl, total = load(a.profile)
    if not total:
        raise SystemExit("empty profile")
    by_file: Counter[tuple[str, str]] = Counter()
    for (_, file), n in own.items():
        by_file[("(all functions)", file)] += n
    print(f"{total} samples\n")
    print("\n".join(table("self time: function", own, total, a.top)))
    print()
    print("\n".join(table("inclusive time: function", incl, total, a.top)))
    print()
    print("\n".join(table("self time by file", by_file, total, a.top)))


if __name__ == "__main__":
    main()
