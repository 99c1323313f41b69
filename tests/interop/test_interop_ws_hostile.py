"""Hostile WebSocket input against a running sipedge, beside a registered WS client.

The proxy runs with ``ws.handshake_timeout = 1`` and ``ws.max_message_size = 4096``. Each
test first registers a well-behaved WS client, then attacks the WS and WSS listeners:
an upgrade without the ``sip`` subprotocol (refused, RFC 7118 §4.1), connections that never
finish their handshake (dropped after the timeout), messages over the size limit (closed
with 1009, RFC 6455 §7.4.1). Afterwards the registered client must still receive a call
over its untouched connection, and sipedge must have logged no traceback.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from interop_matrix import (
    MatrixPorts,
    MatrixProxy,
    MiniUA,
    UdpLink,
    WsLink,
    both,
    client_tls,
    make_cert,
)
from interop_net import HOST, PortAllocator
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import Event
from websockets.typing import Subprotocol

HANDSHAKE_TIMEOUT = 1.0
MAX_WS_MESSAGE = 4096
PING_INTERVAL = 0.5
PING_TIMEOUT = 3.0
HOSTILE_CONFIG = f"""
[ws]
handshake_timeout = {HANDSHAKE_TIMEOUT}
max_message_size = {MAX_WS_MESSAGE}
ping_interval = {PING_INTERVAL}
ping_timeout = {PING_TIMEOUT}
"""


@pytest.fixture(scope="module")
def cert_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_cert(tmp_path_factory.mktemp("ws-hostile-cert"))


@pytest.fixture(scope="module")
def ws_proxy(
    ports: PortAllocator, cert_pair: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MatrixProxy]:
    mx = MatrixPorts(*(ports.take() for _ in range(7)))
    workdir = tmp_path_factory.mktemp("ws-hostile-proxy")
    proxy = MatrixProxy(mx, workdir, *cert_pair, extra=HOSTILE_CONFIG)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


def url(proxy: MatrixProxy, scheme: str) -> str:
    return f"{scheme}://{HOST}:{proxy.ports.ws if scheme == 'ws' else proxy.ports.wss}/"


def run_beside_victim(
    proxy: MatrixProxy, cert: Path, attack: Callable[[], Awaitable[None]]
) -> None:
    """Register a WS client, run ``attack`` while it stays connected, then call it."""

    async def scenario() -> None:
        victim = MiniUA("victim", await WsLink.connect("ws", proxy.ports.ws, None), "")
        victim.user = f"victim-{uuid.uuid4().hex[:6]}"
        caller = MiniUA("caller", await UdpLink.open(proxy.ports.sip), "caller")
        try:
            aor = f"sip:{victim.user}@{proxy.domain}"
            ok = await victim.register(f"sip:{proxy.domain}", aor)
            assert ok.status == 200, ok.text
            await attack()
            c_dlg, v_dlg = await both(caller.invite(aor), victim.answer())
            ok, bye = await both(caller.bye(c_dlg), victim.take_bye(v_dlg))
            assert ok.status == 200 and bye.method == "BYE", ok.text
        finally:
            await victim.link.close()
            await caller.link.close()

    asyncio.run(asyncio.wait_for(scenario(), 20))
    output = proxy.stderr_text()
    assert "Traceback" not in output, proxy.describe()
    assert proxy.proc is not None and proxy.proc.poll() is None, proxy.describe()


@pytest.mark.interop
def test_upgrade_without_sip_subprotocol_is_refused(
    ws_proxy: MatrixProxy, cert_pair: tuple[Path, Path]
) -> None:
    statuses: list[tuple[str, list[str], int]] = []

    async def attack() -> None:
        for scheme in ("ws", "wss"):
            for offered in ([], ["chat"], ["sip.example", "xmpp"]):
                ctx = client_tls(cert_pair[0]) if scheme == "wss" else None
                try:
                    ws = await connect(
                        url(ws_proxy, scheme),
                        subprotocols=[Subprotocol(s) for s in offered] or None,
                        ssl=ctx,
                        open_timeout=3,
                    )
                except InvalidStatus as exc:
                    statuses.append((scheme, offered, exc.response.status_code))
                else:
                    await ws.close()
                    statuses.append((scheme, offered, 101))

    run_beside_victim(ws_proxy, cert_pair[0], attack)
    # RFC 7118 §4.1 / RFC 6455 §4.2.2: no "sip" among the offers, no upgrade.
    assert all(status == 400 for _, _, status in statuses), statuses
    assert len(statuses) == 6


async def _time_to_drop(
    opened: Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]], first_bytes: bytes
) -> float:
    """Open a connection, send ``first_bytes`` (maybe none), then wait for the server to
    close it; seconds from the open to the close."""
    reader, writer = await opened
    start = time.monotonic()
    if first_bytes:
        writer.write(first_bytes)
    try:
        while await asyncio.wait_for(reader.read(4096), 6 * HANDSHAKE_TIMEOUT):
            pass
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()
    return time.monotonic() - start


@pytest.mark.interop
def test_unfinished_handshake_is_dropped_after_timeout(
    ws_proxy: MatrixProxy, cert_pair: tuple[Path, Path]
) -> None:
    partial = f"GET / HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\n".encode()
    times: dict[str, float] = {}
    p = ws_proxy.ports

    async def attack() -> None:
        cases = {
            "ws silent": (asyncio.open_connection(HOST, p.ws), b""),
            "ws half request": (asyncio.open_connection(HOST, p.ws), partial),
            "wss no TLS hello": (asyncio.open_connection(HOST, p.wss), b""),
            "wss TLS, half request": (
                asyncio.open_connection(HOST, p.wss, ssl=client_tls(cert_pair[0])),
                partial,
            ),
        }
        waits = [_time_to_drop(opened, data) for opened, data in cases.values()]
        for name, took in zip(cases, await asyncio.gather(*waits), strict=True):
            times[name] = took

    run_beside_victim(ws_proxy, cert_pair[0], attack)
    for name, took in times.items():
        # Not before the timeout, and not much after it.
        assert 0.8 * HANDSHAKE_TIMEOUT <= took <= 2.5 * HANDSHAKE_TIMEOUT, (name, times)


async def _oversize(proxy: MatrixProxy, scheme: str, cert: Path, shape: str) -> object:
    """Open a SIP WebSocket, check a message under the limit is answered, then send one
    over it shaped as ``shape``; the close code the client then receives ("open" if the
    connection survived, None if it died without a close frame)."""
    ctx = client_tls(cert) if scheme == "wss" else None
    ws = await connect(url(proxy, scheme), subprotocols=[Subprotocol("sip")], ssl=ctx)
    # Control: a SIP message under the limit is answered on this connection.
    await ws.send(_options(proxy, scheme, pad=MAX_WS_MESSAGE // 2))
    answer = str(await asyncio.wait_for(ws.recv(), 3))
    assert answer.startswith("SIP/2.0 200 "), answer
    big = _options(proxy, scheme, pad=2 * MAX_WS_MESSAGE)
    try:
        if shape == "whole":
            await ws.send(big)
        elif shape == "fragmented":  # RFC 6455 §5.4: the limit is on the whole message;
            await ws.send([big[:4000], big[4000:]])  # crossed by the final fragment
        else:
            raise ValueError(shape)
        await asyncio.wait_for(ws.recv(), 3)
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else None
    finally:
        await ws.close()
    return "open"


@pytest.mark.interop
def test_oversized_message_closes_that_connection_with_1009(
    ws_proxy: MatrixProxy, cert_pair: tuple[Path, Path]
) -> None:
    outcomes: dict[str, object] = {}

    async def attack() -> None:
        for scheme in ("ws", "wss"):
            for shape in ("whole", "fragmented"):
                key = f"{scheme} {shape}"
                outcomes[key] = await _oversize(ws_proxy, scheme, cert_pair[0], shape)

    run_beside_victim(ws_proxy, cert_pair[0], attack)
    # RFC 6455 §7.4.1: 1009, a message too big to process.
    expected = dict.fromkeys(outcomes, CloseCode.MESSAGE_TOO_BIG)
    assert len(outcomes) == 4 and outcomes == expected, outcomes


def _options(proxy: MatrixProxy, scheme: str, pad: int) -> str:
    """An OPTIONS to the proxy itself over WS, padded with a header to about ``pad`` bytes."""
    tag = uuid.uuid4().hex[:8]
    lines = [
        f"OPTIONS sip:{proxy.domain} SIP/2.0",
        f"Via: SIP/2.0/{scheme.upper()} hostile.invalid;branch=z9hG4bK{tag}",
        "Max-Forwards: 70",
        f"From: <sip:hostile@{HOST}>;tag={tag}",
        f"To: <sip:{proxy.domain}>",
        f"Call-ID: {tag}@hostile.invalid",
        "CSeq: 1 OPTIONS",
        f"X-Pad: {'a' * pad}",
        "Content-Length: 0",
    ]
    return "\r\n".join(lines) + "\r\n\r\n"


class _PingCounter(ClientConnection):
    """Counts the pings sipedge sends (the library answers each with a pong)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pings = 0

    def process_event(self, event: Event) -> None:
        if isinstance(event, Frame) and event.opcode is Opcode.PING:
            self.pings += 1
        super().process_event(event)


@pytest.mark.interop
def test_pings_come_every_ping_interval_while_answered(ws_proxy: MatrixProxy) -> None:
    window = 4 * PING_INTERVAL + 0.3

    async def count() -> int:
        ws = await connect(
            url(ws_proxy, "ws"),
            subprotocols=[Subprotocol("sip")],
            ping_interval=None,
            create_connection=_PingCounter,
        )
        assert isinstance(ws, _PingCounter)
        await asyncio.sleep(window)
        await ws.close()
        return ws.pings

    pings = asyncio.run(asyncio.wait_for(count(), 10))
    # RFC 6455 §5.5.2 keepalive every ws.ping_interval (0.5 s): 4 in 2.3 s, allow one late.
    assert pings >= 3, f"{pings} pings in {window:.1f}s with ping_interval {PING_INTERVAL}"
