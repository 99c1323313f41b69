"""The ``[api]`` section: the HTTP management API, ``/metrics`` and the web dashboard."""

from __future__ import annotations

import ipaddress

from pydantic import model_validator

from .base import Section, setting
from .values import IP, Invalid

MIN_TOKEN_LENGTH = 16


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an IP address) is a loopback address."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ApiConfig(Section):
    """The management API (OpenAPI at /api/openapi.json), /metrics and the dashboard at /."""

    enabled: bool = setting(True, "Serve the management API, /metrics and the dashboard.")
    host: IP = setting("127.0.0.1", "Address of the API listener; beyond loopback needs a token.")
    port: int = setting(8080, "TCP port of the API listener; 0 = any free port.", ge=0, le=65535)
    token: str = setting(
        "",
        'Bearer token every API call must carry ("Authorization: Bearer ..."); "" = none.',
    )
    capture_messages: int = setting(
        2000, "SIP messages kept in memory for the call view (ladder); 0 = no capture.", ge=0
    )
    capture_bytes: int = setting(
        4_000_000, "Bytes of SIP messages kept in memory for the call view at most.", ge=0
    )

    @model_validator(mode="after")
    def _token_beyond_loopback(self) -> ApiConfig:
        if self.token and len(self.token) < MIN_TOKEN_LENGTH:
            raise Invalid(
                f"the token is shorter than {MIN_TOKEN_LENGTH} characters",
                'use a long random token, e.g. from "openssl rand -hex 24"',
                key="token",
            )
        if self.enabled and not self.token and not is_loopback(self.host):
            raise Invalid(
                f"the API listens on {self.host}, beyond loopback, without a token",
                'set api.token (e.g. from "openssl rand -hex 24") or listen on 127.0.0.1',
                key="token",
            )
        return self
