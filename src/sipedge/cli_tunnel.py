"""``sipedge tunnel``: carry rtpengine's UDP ng control over one TCP (or TLS) connection.

Beside rtpengine::

    sipedge tunnel listen --tcp 0.0.0.0:2224 --udp-target 127.0.0.1:2223

On the proxy host (point the proxy's ``udp:`` node at the ``--udp`` address)::

    sipedge tunnel connect --udp 127.0.0.1:2223 --tcp relay.example.net:2224

Each datagram is framed with its length and a client id, so large replies (statistics,
deletes of many-stream calls) arrive whole and bursts are never merged into one datagram.
Both commands print one ``ready`` line when set up, run until SIGTERM or SIGINT, and log
their counters every ``--stats-interval`` seconds and at exit.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import click

from sipedge.media.tunnel import (
    Address,
    TunnelClient,
    TunnelConfig,
    TunnelServer,
    TunnelStats,
    parse_hostport,
)
from sipedge.runtime.loop import best_loop_factory
from sipedge.sip.errors import ParseError

log = logging.getLogger("sipedge.tunnel")


class _End(Protocol):
    stats: TunnelStats

    async def start(self) -> None: ...

    async def close(self) -> None: ...


def _hostport(ctx: click.Context, param: click.Parameter, value: str | None) -> Address | None:
    if value is None:
        return None
    try:
        return parse_hostport(value)
    except ParseError as exc:
        raise click.BadParameter(exc.reason, ctx, param) from None


_common = [
    click.option("--keepalive", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
                 help="Seconds between keepalive pings on the TCP connection."),
    click.option("--idle-timeout", type=click.FloatRange(min=1), default=300.0, show_default=True,
                 help="Forget a UDP client after this many idle seconds."),
    click.option("--stats-interval", type=click.FloatRange(min=0), default=60.0, show_default=True,
                 help="Log the counters this often (0: only at exit)."),
    click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
                 default="info", show_default=True),
]  # fmt: skip


F = TypeVar("F", bound=Callable[..., Any])


def _with_common(func: F) -> F:
    for option in reversed(_common):
        func = option(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def tunnel() -> None:
    """UDP-over-TCP tunnel for rtpengine's ng control protocol."""


@tunnel.command()
@click.option(
    "--tcp",
    "tcp",
    callback=_hostport,
    metavar="HOST:PORT",
    required=True,
    help="Listen for tunnel clients here.",
)
@click.option(
    "--udp-target",
    callback=_hostport,
    metavar="HOST:PORT",
    required=True,
    help="rtpengine's ng UDP address.",
)
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_with_common
def listen(
    tcp: Address,
    udp_target: Address,
    tls_cert: Path | None,
    tls_key: Path | None,
    keepalive: float,
    idle_timeout: float,
    stats_interval: float,
    log_level: str,
) -> None:
    """Run the rtpengine end: accept tunnel connections, relay to --udp-target."""
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    tls = None
    if tls_cert is not None and tls_key is not None:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(tls_cert, tls_key)
    config = TunnelConfig(
        keepalive=keepalive, dead_after=3 * keepalive, idle_timeout=idle_timeout, tls=tls
    )
    server = TunnelServer(tcp, udp_target, config)

    def ready() -> str:
        host, port = server.tcp_address
        return f"tunnel: ready, tcp {host}:{port} -> udp {udp_target[0]}:{udp_target[1]}"

    _run(server, ready, stats_interval, log_level)


@tunnel.command()
@click.option(
    "--udp",
    "udp",
    callback=_hostport,
    metavar="HOST:PORT",
    required=True,
    help="Listen for ng clients here.",
)
@click.option(
    "--tcp",
    "tcp",
    callback=_hostport,
    metavar="HOST:PORT",
    required=True,
    help="The tunnel server.",
)
@click.option("--tls", is_flag=True, help="Use TLS to the tunnel server.")
@click.option("--tls-ca", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CA file to verify the server (default: the system store).")  # fmt: skip
@click.option("--tls-insecure", is_flag=True, help="Do not verify the server certificate.")
@click.option("--server-name", help="Name to check in the server certificate.")
@_with_common
def connect(
    udp: Address,
    tcp: Address,
    tls: bool,
    tls_ca: Path | None,
    tls_insecure: bool,
    server_name: str | None,
    keepalive: float,
    idle_timeout: float,
    stats_interval: float,
    log_level: str,
) -> None:
    """Run the proxy end: accept ng datagrams on --udp, carry them to --tcp."""
    context = None
    if tls or tls_ca is not None or tls_insecure:
        context = ssl.create_default_context(cafile=tls_ca)
        if tls_insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    config = TunnelConfig(
        keepalive=keepalive,
        dead_after=3 * keepalive,
        idle_timeout=idle_timeout,
        tls=context,
        server_hostname=server_name or (tcp[0] if context else None),
    )
    client = TunnelClient(udp, tcp, config)

    def ready() -> str:
        host, port = client.udp_address
        return f"tunnel: ready, udp {host}:{port} -> tcp {tcp[0]}:{tcp[1]}"

    _run(client, ready, stats_interval, log_level)


def _run(end: _End, ready: Callable[[], str], stats_interval: float, log_level: str) -> None:
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
    _, loop_factory = best_loop_factory()
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(_serve(end, ready, stats_interval))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        raise click.ClickException(f"cannot run the tunnel: {exc}") from exc
    finally:
        log.info("tunnel: %s", end.stats.summary())


async def _serve(end: _End, ready: Callable[[], str], stats_interval: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await end.start()
    try:
        click.echo(ready())
        while not stop.is_set():
            timeout = stats_interval or None
            try:
                await asyncio.wait_for(stop.wait(), timeout)
            except TimeoutError:
                log.info("tunnel: %s", end.stats.summary())
    finally:
        await end.close()
