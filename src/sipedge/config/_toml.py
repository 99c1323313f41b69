"""Write configuration values back in TOML syntax (for messages and the generated docs)."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping

from pydantic import BaseModel

from .values import HostPort, Listen

_AS_STRING = (
    Listen,
    HostPort,
    ipaddress.IPv4Network,
    ipaddress.IPv6Network,
)


def toml_value(value: object) -> str:
    """``value`` as a TOML value: ``true``, ``70``, ``0.5``, ``"text"``, ``[...]``, ``{...}``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, _AS_STRING):
        return toml_value(str(value))
    if isinstance(value, BaseModel):
        return _inline_table({name: getattr(value, name) for name in type(value).model_fields})
    if isinstance(value, Mapping):
        return _inline_table({str(k): v for k, v in value.items()})
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def toml_key(name: str) -> str:
    """A bare key when TOML allows one, else a quoted key."""
    bare = name and all(c.isascii() and (c.isalnum() or c in "-_") for c in name)
    return name if bare else json.dumps(name, ensure_ascii=False)


def _inline_table(items: Mapping[str, object]) -> str:
    if not items:
        return "{}"
    body = ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in items.items())
    return "{ " + body + " }"
