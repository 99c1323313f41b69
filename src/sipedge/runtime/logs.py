"""Logging set-up for the ``sipedge`` process: text or JSON lines on stderr.

Text lines are ``time level logger message`` (plus ``call_id=...`` when the record has
one); JSON lines are one object per record. A record gets a Call-ID through
``log.info("...", extra={"call_id": call_id})``, or else from :data:`CALL_ID`, which the
engine sets while it handles a message (tasks started meanwhile inherit it).
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
# Marks the handler this module installed, so that a second call replaces it and leaves
# every other handler (pytest's, an embedding application's) alone.
_MARK = "_sipedge_handler"

#: The Call-ID of the SIP message being handled; log lines written meanwhile carry it.
CALL_ID: ContextVar[str | None] = ContextVar("sipedge_call_id", default=None)


def _call_id(record: logging.LogRecord) -> str | None:
    explicit = getattr(record, "call_id", None)
    return str(explicit) if explicit is not None else CALL_ID.get()


def _timestamp(record: logging.LogRecord) -> str:
    """ISO 8601 UTC time of the record, to the millisecond."""
    when = datetime.fromtimestamp(record.created, tz=UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    """``2024-05-01T12:00:00.123Z WARNING sipedge.proxy message [call_id=...]``."""

    def format(self, record: logging.LogRecord) -> str:
        """One line (plus the traceback, if any)."""
        line = f"{_timestamp(record)} {record.levelname} {record.name} {record.getMessage()}"
        call_id = _call_id(record)
        if call_id:
            line += f" call_id={call_id}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, call_id, exc."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a single-line JSON object."""
        obj: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        call_id = _call_id(record)
        if call_id:
            obj["call_id"] = call_id
        if record.exc_info:
            obj["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            obj["stack"] = self.formatStack(record.stack_info)
        return json.dumps(obj, ensure_ascii=False, default=str)


def configure_logging(level: str, fmt: str, stream: TextIO | None = None) -> logging.Handler:
    """Send log records at ``level`` or above to ``stream`` (stderr) as ``fmt`` lines.

    ``level`` is debug|info|warning|error, ``fmt`` text|json. Calling it again replaces
    the handler it installed before. Returns the installed handler.
    """
    if level not in _LEVELS:
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(_LEVELS)}")
    if fmt not in ("text", "json"):
        raise ValueError(f"unknown log format {fmt!r}; use text or json")
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    setattr(handler, _MARK, True)
    root.addHandler(handler)
    root.setLevel(_LEVELS[level])
    return handler


def set_level(level: str) -> None:
    """Change the least severe level written (debug|info|warning|error) at run time."""
    if level not in _LEVELS:
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(_LEVELS)}")
    logging.getLogger().setLevel(_LEVELS[level])


def current_level() -> Literal["debug", "info", "warning", "error"]:
    """The root logger's level by name (the nearest named level at or above it)."""
    level = logging.getLogger().level
    if level <= logging.DEBUG:
        return "debug"
    if level <= logging.INFO:
        return "info"
    if level <= logging.WARNING:
        return "warning"
    return "error"
