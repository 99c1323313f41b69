"""Run the management API inside sipedge's own event loop (uvicorn as a task, no threads).

:func:`start_management` builds the capture, the engine tap, the monitor and the ASGI app,
binds the API socket itself (a busy port is logged and sipedge runs on without the API)
and serves it with a uvicorn ``Server`` that installs no signal handlers: SIGTERM, SIGINT
and SIGHUP stay sipedge's. FastAPI and uvicorn are imported only when the API is enabled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..transport.base import bound_socket
from .capture import Capture
from .metrics import Traffic
from .monitor import Monitor

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger("sipedge.mgmt")


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); OSError when it cannot be bound."""
    sock = bound_socket(host, port, socket.SOCK_STREAM)
    try:
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


class ManagementServer:
    """The running API: its uvicorn server task and the monitor task."""

    def __init__(self, server: Any, monitor: Monitor, address: tuple[str, int]) -> None:
        self.server = server
        self.monitor = monitor
        self.address = address
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def url(self) -> str:
        """Where the dashboard is."""
        host, port = self.address
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    def start(self, sock: socket.socket) -> None:
        """Serve on ``sock`` and start measuring."""
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self.server.serve(sockets=[sock])),
            loop.create_task(self.monitor.run()),
        ]

    async def close(self, timeout: float = 2.0) -> None:
        """Stop serving (open requests get ``timeout`` seconds) and stop measuring."""
        self.server.should_exit = True
        serve, monitor = self._tasks
        monitor.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(serve, timeout)
        with contextlib.suppress(asyncio.CancelledError):
            await monitor
        await self.monitor.close()


def uvicorn_server(asgi: Any) -> Any:
    """A uvicorn ``Server`` for ``asgi`` that leaves logging and signals to sipedge; run it
    with ``serve(sockets=[...])`` and stop it with ``should_exit = True``."""
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn without signal handlers of its own."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    config = uvicorn.Config(
        asgi,
        log_config=None,
        access_log=False,
        lifespan="off",
        server_header=False,
        ws="none",
        limit_concurrency=64,
        timeout_graceful_shutdown=1,
    )
    return Server(config)


async def start_management(app: App) -> ManagementServer | None:
    """Start the API of ``app`` as configured in ``[api]``; None when disabled or unbound."""
    c = app.config.api
    if not c.enabled:
        return None
    from .api import ApiSettings, create_api
    from .appfacade import AppFacade

    try:
        sock = bind_socket(c.host, c.port)
    except OSError as exc:
        log.error("management API not started: cannot listen on %s:%d: %s", c.host, c.port, exc)
        return None
    capture = Capture(c.capture_messages, c.capture_bytes) if c.capture_messages else None
    traffic = Traffic(capture)
    dialogs, relay = app.dialogs, app.relay
    monitor = Monitor(
        lambda: (len(dialogs), dialogs.counters["started"]),
        nodes=(lambda: [n.label for n in relay.status()]) if relay is not None else None,
        ping=relay.ping if relay is not None else None,
    )
    facade = AppFacade(app, traffic, monitor, capture)
    asgi = create_api(facade, ApiSettings(token=c.token))
    host, port = sock.getsockname()[:2]
    mgmt = ManagementServer(uvicorn_server(asgi), monitor, (host, port))
    mgmt.start(sock)
    app.engine.tap = traffic
    log.info("management API and dashboard on %s", mgmt.url)
    return mgmt
