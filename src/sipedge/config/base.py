"""Building blocks of the configuration model: :class:`Section` and :func:`setting`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue


def setting(default: Any, doc: str, *, why: str | None = None, **constraints: Any) -> Any:
    """Declare a key: its default, a one-line meaning for the docs, and constraints.

    ``why`` (e.g. ``"RFC 3261 §16.8"``) is added to range errors and to the docs;
    ``constraints`` are pydantic's (``ge``, ``gt``, ``le``, ...).
    """
    extra: dict[str, JsonValue] | None = {"why": why} if why else None
    return Field(default, description=doc, json_schema_extra=extra, **constraints)


class Section(BaseModel):
    """Base of every section: frozen, unknown keys rejected, no type coercion (TOML is typed)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)
