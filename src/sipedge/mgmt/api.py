"""The management API as an ASGI app (FastAPI): ``/api/v1/...``, ``/metrics``, the dashboard.

Authentication: with a token configured, every operation but ``/api/v1/health`` needs
``Authorization: Bearer <token>`` (401 otherwise). Without one (only allowed on loopback,
see :class:`~sipedge.config.api.ApiConfig`) requests must name a loopback host and, from
a browser, come from a page of the same origin: a web page elsewhere cannot drive the API
through the operator's browser (DNS rebinding, cross-site requests; 403 otherwise).

The OpenAPI document is ``/api/openapi.json``; the dashboard (plain HTML/JS from
``static/``) is served at ``/`` and reads the API like any other client.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .. import __version__
from . import schemas as s
from .facade import Invalid, Management, Unavailable
from .routes import build_router

__all__ = ["STATIC_DIR", "ApiSettings", "create_api"]

log = logging.getLogger("sipedge.mgmt")

STATIC_DIR = Path(__file__).parent / "static"
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: The dashboard page runs only its own scripts and styles, and is never framed.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
#: Every operation may answer these: a body that is not JSON (400), no or a wrong token
#: (401), a request from elsewhere than loopback or the dashboard's origin (403).
_DENIED: dict[int | str, dict[str, Any]] = {
    400: {"model": s.Problem},
    401: {"model": s.Problem},
    403: {"model": s.Problem},
}


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """``token``: the bearer token ("" = none: loopback clients only)."""

    token: str = ""
    static_dir: Path = STATIC_DIR


_PROBLEM_JSON = {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
#: The same for an operation whose own answer is not JSON (/metrics).
_JSON_DENIED: dict[int | str, dict[str, Any]] = {
    code: {"content": _PROBLEM_JSON, "description": text}
    for code, text in ((401, "No or a wrong token"), (403, "Not from loopback or same origin"))
}


def _loopback_host(netloc: str) -> bool:
    host = urlsplit(f"//{netloc}").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_BEARER = HTTPBearer(auto_error=False, description="The api.token of the configuration.")


def _token_check(token: str) -> Callable[..., Awaitable[None]]:
    expected = token.encode()

    async def check(
        cred: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
    ) -> None:
        given = cred.credentials.encode() if cred is not None else b""
        if not secrets.compare_digest(given, expected):
            raise HTTPException(
                status_code=401,
                detail="a valid bearer token is required",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check


async def _local_check(request: Request) -> None:
    """No token: the request must name a loopback host, and a browser's Origin must be
    the API's own."""
    host = request.headers.get("host", "")
    if not _loopback_host(host):
        raise HTTPException(status_code=403, detail="the API answers loopback host names only")
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != host:
        raise HTTPException(status_code=403, detail="cross-origin requests are refused")


def create_api(facade: Management, settings: ApiSettings | None = None) -> FastAPI:
    """The ASGI app over ``facade``."""
    settings = settings or ApiSettings()
    check = _token_check(settings.token) if settings.token else _local_check
    guard = [Depends(check)]
    app = FastAPI(
        title="sipedge management API",
        version=__version__,
        description="Statistics, registrations, calls, bans, transports, media relay, "
        "security rules, reloads and logs of a running sipedge.",
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    _errors(app)

    @app.get("/api/v1/health", tags=["status"])
    async def health() -> s.Health:
        """Liveness, without authentication (for load balancers and probes)."""
        return facade.health()

    app.include_router(build_router(facade, dependencies=guard, responses=_DENIED))

    @app.get(
        "/metrics",
        tags=["status"],
        response_class=PlainTextResponse,
        dependencies=guard,
        responses={200: {"content": {METRICS_TYPE: {}}}, **_JSON_DENIED},
    )
    async def metrics() -> PlainTextResponse:
        """Prometheus metrics (text exposition format 0.0.4)."""
        return PlainTextResponse(await facade.metrics(), media_type=METRICS_TYPE)

    _dashboard(app, settings.static_dir)
    return app


def _errors(app: FastAPI) -> None:
    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    app.add_exception_handler(Unavailable, unavailable)
    app.add_exception_handler(Invalid, invalid)


_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


def _dashboard(app: FastAPI, static: Path) -> None:
    """Serve the dashboard files from memory (read once: no disk access, no thread)."""
    files = {
        p.name: (p.read_bytes(), _TYPES[p.suffix])
        for p in sorted(static.glob("*"))
        if p.is_file() and p.suffix in _TYPES
    }
    if "index.html" not in files:
        log.warning("dashboard files missing in %s: serving the API only", static)
        return

    @app.get("/", include_in_schema=False)
    async def dashboard() -> Response:
        body, media = files["index.html"]
        return Response(body, media_type=media, headers=_PAGE_HEADERS)

    @app.get("/static/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        found = files.get(name)
        if found is None:
            raise HTTPException(status_code=404, detail="no such file")
        return Response(
            found[0], media_type=found[1], headers={"X-Content-Type-Options": "nosniff"}
        )
