"""Read SIP messages back out of SIPp's -trace_msg log and pick headers out of them.

A deliberately small, independent reader (the interop tests check sipedge from outside, so
they do not use sipedge's own parser).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SEPARATOR = re.compile(r"^-{20,} .*$", re.M)
_COMPACT = {
    "v": "via",
    "f": "from",
    "t": "to",
    "i": "call-id",
    "m": "contact",
    "l": "content-length",
}


@dataclass(frozen=True)
class Traced:
    """One message from a SIPp message log."""

    sent: bool  # False: received by SIPp
    text: str

    @property
    def first_line(self) -> str:
        return self.text.split("\r\n", 1)[0]

    @property
    def method(self) -> str | None:
        """The request method, or None for a response."""
        first = self.first_line
        return None if first.startswith("SIP/2.0 ") else first.split(" ", 1)[0]

    @property
    def status(self) -> int | None:
        first = self.first_line
        return int(first.split(" ")[1]) if first.startswith("SIP/2.0 ") else None


def parse_trace(log: str) -> list[Traced]:
    """Split a SIPp messages.log into messages, in order."""
    out: list[Traced] = []
    log = log.replace("\r\n", "\n")  # messages are CRLF, the log's own lines LF
    for block in _SEPARATOR.split(log):
        block = block.lstrip("\n")
        if not block:
            continue
        info, _, text = block.partition("\n\n")
        if "message sent" not in info and "message received" not in info:
            continue
        text = text.rstrip("\n").replace("\n", "\r\n")
        out.append(Traced(sent="message sent" in info, text=text))
    return out


def find(msgs: list[Traced], *, sent: bool, method: str | None = None) -> list[Traced]:
    """Messages in one direction, optionally only requests of one method."""
    return [m for m in msgs if m.sent == sent and (method is None or m.method == method)]


def header_values(text: str, name: str) -> list[str]:
    """All values of a header (long or compact name, case-insensitive), unfolded."""
    head = text.split("\r\n\r\n", 1)[0]
    lines: list[str] = []
    for line in head.split("\r\n")[1:]:
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += " " + line.strip()
        else:
            lines.append(line)
    want = name.lower()
    values = []
    for line in lines:
        hname, sep, value = line.partition(":")
        hname = hname.strip().lower()
        if sep and _COMPACT.get(hname, hname) == want:
            values.append(value.strip())
    return values


def split_entries(values: list[str]) -> list[str]:
    """Split header values at commas outside quotes and <> (Via, Route, Record-Route)."""
    out: list[str] = []
    for value in values:
        depth, quoted, start = 0, False, 0
        for i, ch in enumerate(value):
            if ch == '"' and (i == 0 or value[i - 1] != "\\"):
                quoted = not quoted
            elif not quoted and ch == "<":
                depth += 1
            elif not quoted and ch == ">":
                depth -= 1
            elif not quoted and depth == 0 and ch == ",":
                out.append(value[start:i].strip())
                start = i + 1
        out.append(value[start:].strip())
    return [e for e in out if e]


def entries(text: str, name: str) -> list[str]:
    """The comma-separated entries of every instance of a header, in order."""
    return split_entries(header_values(text, name))


def branch(via: str) -> str | None:
    """The branch parameter of one Via entry."""
    m = re.search(r";\s*branch\s*=\s*([^;,\s]+)", via, re.I)
    return m.group(1) if m else None
