"""Subscribers and Digest authentication (RFC 3261 §22, RFC 7616, RFC 8760).

:mod:`.store` keeps HA1 values per (username, realm) behind the :class:`CredentialStore`
protocol; :mod:`.service` checks a request's credentials and builds challenges.
"""

from __future__ import annotations

from .service import Authenticator, AuthResult
from .store import (
    STORED_ALGORITHMS,
    Credential,
    CredentialStore,
    CredentialStoreError,
    MemoryCredentialStore,
    SqliteCredentialStore,
    UnknownUser,
    UserExists,
)

__all__ = [
    "STORED_ALGORITHMS",
    "AuthResult",
    "Authenticator",
    "Credential",
    "CredentialStore",
    "CredentialStoreError",
    "MemoryCredentialStore",
    "SqliteCredentialStore",
    "UnknownUser",
    "UserExists",
]
