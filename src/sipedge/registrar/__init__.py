"""Registrar and location service (RFC 3261 §10.3, RFC 3327 Path, RFC 5626 basics).

``binding`` holds the immutable :class:`Binding`; ``store`` the :class:`LocationStore`
protocol and its memory/SQLite default; ``service`` the pure REGISTER logic
(:func:`apply_register`); ``location`` the async :class:`Registrar` that ties them.
"""

from __future__ import annotations

from .binding import Binding
from .location import Registrar
from .service import RegisterOutcome, RegistrarPolicy, aor_of, apply_register
from .store import LocationStore, MemoryLocationStore, StoreError

__all__ = [
    "Binding",
    "LocationStore",
    "MemoryLocationStore",
    "RegisterOutcome",
    "Registrar",
    "RegistrarPolicy",
    "StoreError",
    "aor_of",
    "apply_register",
]
