"""Read the TOML file, apply command-line overrides, validate into :class:`Config`."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .model import Config
from .problems import ConfigError, validate

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
    """Validate an already parsed TOML document (plus ``overrides``) into :class:`Config`."""
    overrides = overrides or {}
    return validate(Config, apply_overrides(data, overrides), overridden=overrides.keys())


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
