"""Counters fed by the engine and the Prometheus text exposition format (version 0.0.4).

:class:`Traffic` is the engine's tap: one dict increment per SIP message in or out (keyed
by the start line's method or status code, read by slicing the bytes, no parsing) and a
reference to the message for the :class:`~sipedge.mgmt.capture.Capture`. :class:`Exposition`
writes metric families as text; :class:`Histogram` is a fixed-bucket histogram.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from ..transport.base import Flow
from .capture import Capture

__all__ = ["KNOWN_METHODS", "Exposition", "Histogram", "Traffic"]

#: Methods always counted under their own name (RFC 3261 and its extensions).
KNOWN_METHODS = frozenset(
    b"INVITE ACK BYE CANCEL REGISTER OPTIONS PRACK SUBSCRIBE NOTIFY PUBLISH INFO REFER "
    b"MESSAGE UPDATE".split()
)
_OTHER = b"other"
_MAX_OTHER_METHODS = 32  # extension methods counted by name before the rest become "other"

Key = tuple[bool, bool, bytes]  # (inbound, is_response, method or status code)


def _start_token(data: bytes) -> tuple[bool, bytes]:
    """(is_response, status code or method) from the start line, by slicing only."""
    if data.startswith(b"SIP/2.0 "):
        return True, data[8:11]
    space = data.find(b" ", 0, 32)
    return False, data[:space] if space > 0 else _OTHER


class Traffic:
    """Messages in and out by method and status, drops by reason; feeds the capture."""

    def __init__(self, capture: Capture | None = None) -> None:
        self.capture = capture
        self.counts: dict[Key, int] = {}
        self.drops: dict[str, int] = {}
        self._methods = 0

    def message(self, inbound: bool, data: bytes, flow: Flow) -> None:
        """A message crossed the wire (the engine's hot path: keep it to a dict update)."""
        is_response, token = _start_token(data)
        key = (inbound, is_response, token)
        counts = self.counts
        n = counts.get(key)
        if n is None:
            key = self._admit(key)
            n = counts.get(key, 0)
        counts[key] = n + 1
        if self.capture is not None:
            self.capture.add(inbound, flow, data)

    def _admit(self, key: Key) -> Key:
        """Bound the label set: a peer must not create a metric per made-up method."""
        inbound, is_response, token = key
        if is_response:
            ok = len(token) == 3 and token.isdigit() and b"100" <= token <= b"699"
            return key if ok else (inbound, True, _OTHER)
        if token in KNOWN_METHODS:
            return key
        if self._methods < _MAX_OTHER_METHODS and token.isalpha() and token.isupper():
            self._methods += 1
            return key
        return (inbound, False, _OTHER)

    def dropped(self, reason: str) -> None:
        """A message was dropped or could not be sent (``banned``, ``parse_error``...)."""
        self.drops[reason] = self.drops.get(reason, 0) + 1

    def totals(self, inbound: bool, responses: bool) -> dict[str, int]:
        """Counts of one direction and kind by method (or status code)."""
        out: dict[str, int] = {}
        for (i, r, token), n in self.counts.items():
            if i == inbound and r == responses:
                name = token.decode("ascii", "replace")
                out[name] = out.get(name, 0) + n
        return out


class Histogram:
    """Observations in fixed cumulative buckets (upper bounds, seconds)."""

    def __init__(self, buckets: Sequence[float]) -> None:
        self.bounds = tuple(sorted(buckets))
        self.counts = [0] * len(self.bounds)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Record one value."""
        self.count += 1
        self.sum += value
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[i] += 1
                break

    def cumulative(self) -> list[tuple[float, int]]:
        """(le, observations <= le) for every bucket, +Inf last."""
        out: list[tuple[float, int]] = []
        total = 0
        for bound, n in zip(self.bounds, self.counts, strict=True):
            total += n
            out.append((bound, total))
        out.append((math.inf, self.count))
        return out


Labels = Mapping[str, str]
Sample = tuple[Labels, float]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _value(value: float) -> str:
    if isinstance(value, int) or (math.isfinite(value) and value == int(value)):
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


class Exposition:
    """Builds the Prometheus text format, one family at a time."""

    def __init__(self) -> None:
        self._lines: list[str] = []

    def _head(self, name: str, kind: str, help_text: str) -> None:
        help_text = help_text.replace("\\", "\\\\").replace("\n", "\\n")
        self._lines.append(f"# HELP {name} {help_text}")
        self._lines.append(f"# TYPE {name} {kind}")

    def counter(self, name: str, help_text: str, samples: Iterable[Sample]) -> None:
        """A counter family; ``name`` ends in ``_total``."""
        self._family(name, "counter", help_text, samples)

    def gauge(self, name: str, help_text: str, samples: Iterable[Sample]) -> None:
        """A gauge family."""
        self._family(name, "gauge", help_text, samples)

    def _family(self, name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> None:
        self._head(name, kind, help_text)
        for labels, value in samples:
            self._lines.append(f"{name}{_labels(labels)} {_value(value)}")

    def histogram(
        self, name: str, help_text: str, series: Iterable[tuple[Labels, Histogram]]
    ) -> None:
        """A histogram family: ``_bucket`` (with ``le``), ``_sum`` and ``_count``."""
        self._head(name, "histogram", help_text)
        for labels, hist in series:
            for bound, n in hist.cumulative():
                le = "+Inf" if math.isinf(bound) else repr(bound)
                self._lines.append(f"{name}_bucket{_labels({**labels, 'le': le})} {n}")
            self._lines.append(f"{name}_sum{_labels(labels)} {_value(hist.sum)}")
            self._lines.append(f"{name}_count{_labels(labels)} {hist.count}")

    def text(self) -> str:
        """The exposition document."""
        return "\n".join(self._lines) + "\n"
