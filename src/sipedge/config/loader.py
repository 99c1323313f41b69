"""Read the TOML file, apply command-line overrides, validate into :class:`Config`."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .model import Config
from .problems import ConfigError, validate
from .values import Invalid, Listen, parse_listen

_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")


def load_config(path: Path | None = None, overrides: Mapping[str, Any] | None = None) -> Config:
    """Load ``path`` (None: the embedded defaults) and apply ``overrides``.

    ``overrides`` maps dotted keys to TOML-like values, e.g.
    ``{"server.listen": ["udp:[::1]:5060"], "server.log_level": "debug"}``; each replaces the
    file's value. Raises :class:`ConfigError` listing every problem found.
    """
    data = read_toml(path) if path is not None else {}
    return parse_config(data, overrides)


def parse_config(data: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> Config:
    """Validate an already parsed TOML document (plus ``overrides``) into :class:`Config`.

    When ``overrides`` replace ``server.listen`` (``sipedge run --listen``), the file's
    ``server.advertise`` entries for listeners no longer present are dropped.
    """
    overrides = overrides or {}
    merged = apply_overrides(data, overrides)
    if "server.listen" in overrides and "server.advertise" not in overrides:
        _drop_stale_advertise(merged)
    return validate(Config, merged, overridden=overrides.keys())


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; unreadable files and syntax errors raise :class:`ConfigError`."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(
            [f"{path}: cannot read the file ({reason}); fix: check the path and its permissions"]
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [f"{path}: byte {exc.start} is not UTF-8; fix: save the file as UTF-8"]
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([_toml_problem(path, str(exc))]) from None


def _toml_problem(path: Path, message: str) -> str:
    """``path:line:column: invalid TOML (...)``; tomllib puts the position in its message."""
    m = _TOML_POSITION.search(message)
    reason = _TOML_POSITION.sub("", message).strip()
    if m is None:
        return f"{path}: invalid TOML ({reason}); fix: correct the TOML syntax"
    line, column = m.groups()
    return (
        f"{path}:{line}:{column}: invalid TOML ({reason}); "
        f"fix: correct the TOML syntax at line {line}, column {column}"
    )


def apply_overrides(data: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` with each dotted key of ``overrides`` set (tables made as needed)."""
    result = _copy_tables(data)
    for dotted, value in overrides.items():
        *parents, last = dotted.split(".")
        table = result
        for name in parents:
            child = table.get(name)
            if not isinstance(child, dict):
                child = table[name] = {}
            table = child
        table[last] = value
    return result


def _copy_tables(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _copy_tables(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def _drop_stale_advertise(data: dict[str, Any]) -> None:
    """Drop ``server.advertise`` entries naming none of the ``server.listen`` listeners."""
    server = data.get("server")
    if not isinstance(server, dict):
        return
    listen, advertise = server.get("listen"), server.get("advertise")
    if not isinstance(listen, list | tuple) or not isinstance(advertise, Mapping):
        return
    current = {_canonical(x) for x in listen}
    # An entry whose key does not parse stays, so that its error is still reported.
    server["advertise"] = {
        k: v for k, v in advertise.items() if (c := _canonical(k)) is None or c in current
    }


def _canonical(listen: object) -> str | None:
    """The canonical form of a listener, or None when it does not parse."""
    if isinstance(listen, Listen):
        return str(listen)
    try:
        return str(parse_listen(listen)) if isinstance(listen, str) else None
    except Invalid:
        return None
