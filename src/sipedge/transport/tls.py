"""TLS contexts for SIP over TLS (RFC 3261 §26.2, RFC 5630) and secure WebSocket.

:class:`ServerTls` builds the server side: one certificate per name chosen by SNI (RFC 6066
§3) with a default certificate for clients that send no name or an unknown one, TLS 1.2 at
least, a cipher list without RC4, 3DES, NULL or EXPORT suites (TLS 1.3 suites keep the
OpenSSL defaults) and optional mutual TLS. :meth:`ServerTls.reload` re-reads the files:
new handshakes use the new certificates, established connections keep theirs.

:class:`ClientTls` builds the client side: the peer certificate is verified against a CA
bundle (or the system store) and matched against the expected host name (RFC 5922 §7.3
for SIP; an IP literal matches an IP address SAN).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .base import TransportError

log = logging.getLogger(__name__)

DEFAULT_CIPHERS = (
    "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:ECDHE+AES"
    # RFC 3261 §26.3.1 names TLS_RSA_WITH_AES_128_CBC_SHA as mandatory: last resort only.
    ":AES128-SHA"
)
"""TLS 1.2 cipher list used when a configuration gives none (forward secrecy first)."""

_FORBIDDEN = ":!aNULL:!eNULL:!EXPORT:!DES:!3DES:!RC4:!MD5:!PSK:!SRP:!DSS"
"""Appended to every cipher list, also to one given in a configuration."""

_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


class TlsError(TransportError):
    """A TLS configuration cannot be loaded (missing file, bad key, bad option)."""


@dataclass(frozen=True, slots=True)
class TlsServerConfig:
    """Files and options of a TLS listener.

    ``cert``/``key``: the default certificate chain and key (PEM). ``sni``: more
    certificates by server name, ``{"sip.example.com": (cert, key)}``; a name
    ``*.example.com`` matches one label. ``min_version``: ``"1.2"`` or ``"1.3"``.
    ``ciphers``: an OpenSSL TLS 1.2 cipher list (weak suites are always removed).
    ``client_ca``: verify client certificates against these CAs (mutual TLS); a client
    without one is refused when ``require_client_cert``, else accepted unauthenticated.
    """

    cert: Path
    key: Path
    sni: Mapping[str, tuple[Path, Path]] = field(default_factory=dict)
    min_version: str = "1.2"
    ciphers: str | None = None
    client_ca: Path | None = None
    require_client_cert: bool = False


@dataclass(frozen=True, slots=True)
class TlsClientConfig:
    """How outbound TLS connections authenticate the peer (and themselves).

    ``ca_bundle``: trusted CAs (PEM); None uses the system store. ``verify=False``
    disables certificate and host name checks (testing only). ``cert``/``key``: our
    client certificate for mutual TLS. ``server_name``: the name to verify and send as SNI
    when the caller gives none (else the target IP address is verified).
    """

    ca_bundle: Path | None = None
    verify: bool = True
    cert: Path | None = None
    key: Path | None = None
    server_name: str | None = None
    min_version: str = "1.2"
    ciphers: str | None = None


def _base_context(purpose: int, min_version: str, ciphers: str | None) -> ssl.SSLContext:
    version = _VERSIONS.get(min_version)
    if version is None:
        raise TlsError(f"unsupported TLS min_version {min_version!r} (use '1.2' or '1.3')")
    ctx = ssl.SSLContext(purpose)
    ctx.minimum_version = version
    try:
        ctx.set_ciphers((ciphers or DEFAULT_CIPHERS) + _FORBIDDEN)
    except ssl.SSLError as exc:
        raise TlsError(f"bad cipher list {ciphers!r}: {exc}") from exc
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    return ctx


def _load_chain(ctx: ssl.SSLContext, cert: Path, key: Path | None) -> None:
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:  # missing file, unreadable, key mismatch
        raise TlsError(f"cannot load certificate {cert} / key {key}: {exc}") from exc


def _load_cas(ctx: ssl.SSLContext, cafile: Path) -> None:
    try:
        ctx.load_verify_locations(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(f"cannot load CA file {cafile}: {exc}") from exc


def _server_context(config: TlsServerConfig, cert: Path, key: Path) -> ssl.SSLContext:
    ctx = _base_context(ssl.PROTOCOL_TLS_SERVER, config.min_version, config.ciphers)
    ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    _load_chain(ctx, cert, key)
    if config.client_ca is not None:
        _load_cas(ctx, config.client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED if config.require_client_cert else ssl.CERT_OPTIONAL
    elif config.require_client_cert:
        raise TlsError("require_client_cert needs client_ca")
    return ctx


def _normalize_name(name: str) -> str:
    return name.strip().rstrip(".").lower()


@dataclass(frozen=True, slots=True)
class _ServerContexts:
    default: ssl.SSLContext
    by_name: dict[str, ssl.SSLContext]

    def pick(self, server_name: str | None) -> ssl.SSLContext:
        if not server_name:
            return self.default
        name = _normalize_name(server_name)
        ctx = self.by_name.get(name)
        if ctx is None and "." in name:
            ctx = self.by_name.get("*." + name.split(".", 1)[1])
        return ctx or self.default


class ServerTls:
    """The SSL context of a TLS or WSS listener, with SNI and reload.

    Pass :attr:`context` to the listener. Its SNI callback moves each handshake to the
    context of the requested name (or the default one) from the latest :meth:`reload`.
    Raises :class:`TlsError` when a file cannot be loaded.
    """

    def __init__(self, config: TlsServerConfig) -> None:
        self._config = config
        self._contexts = self._build()
        self._front = _server_context(config, config.cert, config.key)
        self._front.sni_callback = self._on_sni

    @property
    def config(self) -> TlsServerConfig:
        """The configuration the contexts are built from."""
        return self._config

    @property
    def context(self) -> ssl.SSLContext:
        """The context to listen with (stable across reloads)."""
        return self._front

    def context_for(self, server_name: str | None) -> ssl.SSLContext:
        """The context a handshake for ``server_name`` would use now."""
        return self._contexts.pick(server_name)

    def reload(self) -> None:
        """Re-read every certificate, key and CA file; on error keep the old ones and raise.

        Existing connections keep the certificate they were set up with.
        """
        self._contexts = self._build()
        log.info(
            "TLS certificates reloaded from %s (+%d SNI)", self._config.cert, len(self._config.sni)
        )

    def _build(self) -> _ServerContexts:
        config = self._config
        by_name = {
            _normalize_name(name): _server_context(config, cert, key)
            for name, (cert, key) in config.sni.items()
        }
        return _ServerContexts(_server_context(config, config.cert, config.key), by_name)

    def _on_sni(self, conn: Any, server_name: str | None, _ctx: ssl.SSLContext) -> None:
        """OpenSSL's servername callback (RFC 6066 §3); also called without a name."""
        try:
            conn.context = self._contexts.pick(server_name)
        except Exception:  # never break the handshake loop with an exception
            log.exception("SNI selection failed for %r", server_name)


def client_context(config: TlsClientConfig) -> ssl.SSLContext:
    """A client context that verifies the peer certificate and host name (unless told not)."""
    ctx = _base_context(ssl.PROTOCOL_TLS_CLIENT, config.min_version, config.ciphers)
    if config.verify:
        if config.ca_bundle is not None:
            _load_cas(ctx, config.ca_bundle)
        else:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if config.cert is not None:
        _load_chain(ctx, config.cert, config.key)
    elif config.key is not None:
        raise TlsError("a client key needs a client certificate")
    return ctx


class ClientTls:
    """A named outbound TLS profile: its configuration and the current client context."""

    def __init__(self, config: TlsClientConfig) -> None:
        self._config = config
        self._context = client_context(config)

    @property
    def config(self) -> TlsClientConfig:
        """The configuration the context is built from."""
        return self._config

    @property
    def context(self) -> ssl.SSLContext:
        """The context for new connections."""
        return self._context

    def reload(self) -> None:
        """Re-read the files; new connections use the new context (TlsError on failure)."""
        self._context = client_context(self._config)
