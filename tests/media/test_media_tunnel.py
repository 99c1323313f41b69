"""The UDP-over-TCP tunnel: framing, both ends in process, the CLI, and socat as a control."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from media_support import HOST, SDP_OFFER, RtpEngineDaemon, free_port, run, sdp_with_streams

from sipedge.cli_cert import make_selfsigned
from sipedge.cli_tunnel import tunnel
from sipedge.media.ng import encode_message, parse_message
from sipedge.media.tunnel import (
    CLOSE,
    DATA,
    PING,
    Frame,
    FrameReader,
    TunnelClient,
    TunnelConfig,
    TunnelServer,
    encode_frame,
    parse_hostport,
)
from sipedge.sip.errors import LimitExceeded, ParseError

# -- framing -----------------------------------------------------------------------------------


@given(
    st.lists(st.tuples(st.sampled_from([DATA, PING, CLOSE]), st.integers(0, 2**32 - 1),
                       st.binary(max_size=300)), max_size=8),
    st.lists(st.integers(1, 50), min_size=1, max_size=20),
)  # fmt: skip
def test_frames_survive_any_chunking(
    frames: list[tuple[int, int, bytes]], sizes: list[int]
) -> None:
    stream = b"".join(encode_frame(*f) for f in frames)
    reader = FrameReader()
    got: list[Frame] = []
    pos = 0
    for size in sizes * (len(stream) // sum(sizes) + 1):
        got += reader.feed(stream[pos : pos + size])
        pos += size
    assert got == [Frame(*f) for f in frames]


def test_frame_layout_and_limits() -> None:
    assert encode_frame(DATA, 7, b"hi") == b"\x00\x00\x00\x07\x00\x00\x00\x00\x07hi"
    assert FrameReader().feed(encode_frame(DATA, 1, b"x" * 65535))[0].payload == b"x" * 65535
    with pytest.raises(LimitExceeded):
        encode_frame(DATA, 1, b"x" * 65536)
    for bad in (b"\x00\x00\x00\x04\x00\x00\x00\x00\x00", b"\x00\x01\x00\x05" + b"\x00" * 5,
                b"\x00\x00\x00\x05\x09\x00\x00\x00\x00"):  # fmt: skip
        with pytest.raises(ParseError):
            FrameReader().feed(bad)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("127.0.0.1:5", ("127.0.0.1", 5)),
        ("[::1]:2223", ("::1", 2223)),
        ("h.example:0", ("h.example", 0)),
    ],
)
def test_parse_hostport(text: str, want: tuple[str, int]) -> None:
    assert parse_hostport(text) == want


@pytest.mark.parametrize("text", ["", "host", ":5", "h:", "h:x", "h:70000"])
def test_parse_hostport_rejects(text: str) -> None:
    with pytest.raises(ParseError):
        parse_hostport(text)


# -- both ends in process -----------------------------------------------------------------------


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(data, addr)


@asynccontextmanager
async def tunnel_pair(
    target: tuple[str, int], **settings: Any
) -> AsyncIterator[tuple[TunnelClient, TunnelServer]]:
    server_only = settings.pop("server", {})  # server-side overrides, e.g. its TLS context
    config = TunnelConfig(**settings)
    server = TunnelServer((HOST, 0), target, _with(config, **{"tls": None, **server_only}))
    await server.start()
    client = TunnelClient((HOST, 0), server.tcp_address, config)
    await client.start()
    try:
        await asyncio.wait_for(client.connected.wait(), 2)
        yield client, server
    finally:
        await client.close()
        await server.close()


def _with(config: TunnelConfig, **changes: Any) -> TunnelConfig:
    fields = {name: getattr(config, name) for name in config.__dataclass_fields__}
    return TunnelConfig(**{**fields, **changes})


async def echo_server() -> tuple[asyncio.DatagramTransport, tuple[str, int]]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Echo, local_addr=(HOST, 0))
    transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
    return transport, transport.get_extra_info("sockname")[:2]


def udp_socket(timeout: float = 2.0) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
    s.settimeout(timeout)
    s.bind((HOST, 0))
    return s


async def recv_all(s: socket.socket, n: int, timeout: float = 2.0) -> list[bytes]:
    """Up to ``n`` datagrams, read in a thread so that the tunnel keeps running."""

    def read() -> list[bytes]:
        got: list[bytes] = []
        s.settimeout(timeout)
        try:
            while len(got) < n:
                got.append(s.recv(1 << 17))
        except TimeoutError:
            pass
        return got

    return await asyncio.to_thread(read)


def test_datagrams_of_any_size_from_many_clients_stay_whole() -> None:
    async def main() -> None:
        echo, target = await echo_server()
        async with tunnel_pair(target) as (client, server):
            socks = [udp_socket() for _ in range(3)]
            sizes = [1, 1400, 11 * 1024, 65000]  # (asyncio never sends empty datagrams)
            for i, s in enumerate(socks):
                for size in sizes:
                    s.sendto(bytes([i]) * size, client.udp_address)
            for i, s in enumerate(socks):
                got = await recv_all(s, len(sizes))
                assert sorted(got, key=len) == [bytes([i]) * size for size in sizes]
            assert client.stats.datagrams_in == client.stats.datagrams_out == 12
            assert server.stats.dropped == client.stats.dropped == 0
            for s in socks:
                s.close()
        echo.close()

    run(main())


def test_tls_tunnel(tmp_path: Path) -> None:
    cert, key = make_selfsigned(tmp_path, "tunnel.test")
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    client_tls = ssl.create_default_context(cafile=str(cert))

    async def main() -> None:
        echo, target = await echo_server()
        settings = {"tls": client_tls, "server_hostname": "tunnel.test"}
        settings["server"] = {"tls": server_tls}
        async with tunnel_pair(target, **settings) as (client, _):
            with udp_socket() as s:
                s.sendto(b"x" * 20000, client.udp_address)
                assert await recv_all(s, 1) == [b"x" * 20000]
        echo.close()

    run(main())


def test_reconnects_after_the_server_restarts() -> None:
    async def main() -> None:
        echo, target = await echo_server()
        port = free_port()
        config = TunnelConfig(reconnect_min=0.05, reconnect_max=0.1)
        server = TunnelServer((HOST, port), target, config)
        await server.start()
        client = TunnelClient((HOST, 0), (HOST, port), config)
        await client.start()
        await asyncio.wait_for(client.connected.wait(), 2)
        await server.close()
        await asyncio.sleep(0.1)
        assert not client.connected.is_set()
        with udp_socket() as s:
            s.sendto(b"queued while down", client.udp_address)
            server = TunnelServer((HOST, port), target, config)
            await server.start()
            await asyncio.wait_for(client.connected.wait(), 2)
            assert await recv_all(s, 1) == [b"queued while down"]
        assert client.stats.connects == 2 and client.stats.disconnects == 1
        await client.close()
        await server.close()
        echo.close()

    run(main())


def test_queue_is_bounded_while_the_server_is_down() -> None:
    async def main() -> None:
        config = TunnelConfig(max_queue=5, reconnect_min=1.0)
        client = TunnelClient((HOST, 0), (HOST, free_port()), config)
        await client.start()
        with udp_socket() as s:
            for i in range(20):
                s.sendto(b"%d" % i, client.udp_address)
            await asyncio.sleep(0.1)
        assert client.stats.dropped == 15 and client.stats.datagrams_in == 5
        await client.close()

    run(main())


def test_silent_peer_is_dropped_by_keepalive() -> None:
    async def main() -> None:
        async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while await reader.read(1024):  # reads pings, never answers
                pass
            writer.close()

        server = await asyncio.start_server(mute, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        config = TunnelConfig(keepalive=0.05, dead_after=0.15, reconnect_min=0.05)
        client = TunnelClient((HOST, 0), (HOST, port), config)
        await client.start()
        await asyncio.sleep(0.6)
        await client.close()
        server.close()
        assert client.stats.disconnects >= 1 and client.stats.connects >= 2

    run(main())


def test_idle_client_ids_expire_on_both_ends() -> None:
    async def main() -> None:
        echo, target = await echo_server()
        async with tunnel_pair(target, idle_timeout=0.2) as (client, server):
            with udp_socket() as s:
                s.sendto(b"one", client.udp_address)
                assert await recv_all(s, 1) == [b"one"]
                assert client.clients == server.clients == 1
                await asyncio.sleep(0.5)
                assert client.stats.clients_expired == 1
                assert client.clients == server.clients == 0  # by CLOSE or by its own expiry
                s.sendto(b"two", client.udp_address)  # a new client id, a new socket
                assert await recv_all(s, 1) == [b"two"]
        echo.close()

    run(main())


def test_server_expires_idle_sockets_by_itself() -> None:
    async def main() -> None:
        echo, target = await echo_server()
        async with tunnel_pair(target, server={"idle_timeout": 0.2}) as (client, server):
            with udp_socket() as s:
                s.sendto(b"one", client.udp_address)
                assert await recv_all(s, 1) == [b"one"]
                await asyncio.sleep(0.4)
                assert (server.clients, server.stats.clients_expired) == (0, 1)
                assert client.clients == 1  # the client keeps its id (300 s default)
                s.sendto(b"two", client.udp_address)  # the server opens a new socket
                assert await recv_all(s, 1) == [b"two"]
        echo.close()

    run(main())


# -- against rtpengine -------------------------------------------------------------------------


async def burst(port: int, bodies: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Send every command back to back from one socket; map cookie -> reply body.

    Cookies are ``k0``, ``k1``... after a fresh prefix: rtpengine answers a cookie it has
    seen lately from its cache, whatever the command.
    """
    prefix = f"{time.monotonic_ns()}-"
    with udp_socket() as s:
        for i, body in enumerate(bodies):
            s.sendto(encode_message(f"{prefix}k{i}", body), (HOST, port))
        datagrams = await recv_all(s, len(bodies), timeout=1.0)
    replies = [parse_message(d) for d in datagrams]
    return {m.cookie.removeprefix(prefix): m.body for m in replies}


def offers(n: int, tag: str) -> list[dict[str, Any]]:
    stamp = time.monotonic_ns()
    return [
        {"command": "offer", "call-id": f"{tag}-{stamp}-{i}", "from-tag": "f", "sdp": SDP_OFFER}
        for i in range(n)
    ]


def big_call(port: int, tag: str) -> str:
    """A call with 10 audio streams; its ``query`` reply is about 12 KB."""
    call_id = f"{tag}-{time.monotonic_ns()}"
    with udp_socket() as s:
        for command, sdp, extra in (
            ("offer", sdp_with_streams(10), {}),
            ("answer", sdp_with_streams(10, "203.0.113.7"), {"to-tag": "t"}),
        ):
            body = {"command": command, "call-id": call_id, "from-tag": "f", "sdp": sdp, **extra}
            s.sendto(encode_message(f"{call_id}-{command}", body), (HOST, port))
            assert parse_message(s.recv(1 << 17)).body["result"] == "ok"
    return call_id


@pytest.mark.interop
def test_bursts_and_a_large_reply_through_the_tunnel(rtpengine: RtpEngineDaemon) -> None:
    async def main() -> None:
        async with tunnel_pair((HOST, rtpengine.ng_udp)) as (client, _):
            port = client.udp_address[1]
            pongs = await burst(port, [{"command": "ping"}] * 50)
            assert len(pongs) == 50 and all(b == {"result": "pong"} for b in pongs.values())
            replies = await burst(port, offers(20, "tun"))
            assert len(replies) == 20 and all(b["result"] == "ok" for b in replies.values())
            call_id = big_call(rtpengine.ng_udp, "tun-big")  # set up directly, query via tunnel
            (query,) = (await burst(port, [{"command": "query", "call-id": call_id}])).values()
            assert len(encode_message("k0", query)) > 11000
            assert len(query["tags"]["f"]["medias"]) == 10

    run(main())


def _python(*args: str) -> list[str]:
    return [sys.executable, "-c", "from sipedge.cli_tunnel import tunnel; tunnel()", *args]


@contextmanager
def process(args: list[str]) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "ready" in line, proc.stderr.read() if proc.stderr else line
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.mark.interop
def test_cli_listen_and_connect(rtpengine: RtpEngineDaemon) -> None:
    tcp, udp = free_port(), free_port()
    listen = _python(
        "listen", "--tcp", f"{HOST}:{tcp}", "--udp-target", f"{HOST}:{rtpengine.ng_udp}"
    )
    connect = _python("connect", "--udp", f"{HOST}:{udp}", "--tcp", f"{HOST}:{tcp}")
    with process(listen) as server, process(connect) as client:
        deadline = time.monotonic() + 5
        pongs: dict[str, dict[str, Any]] = {}
        while time.monotonic() < deadline and not pongs:  # until the TCP leg is up
            pongs = run(burst(udp, [{"command": "ping"}]))
        assert run(burst(udp, [{"command": "ping"}] * 50)) == {
            f"k{i}": {"result": "pong"} for i in range(50)
        }
        for proc in (client, server):
            os.kill(proc.pid, signal.SIGTERM)
            assert proc.wait(5) == 0
            assert proc.stderr is not None
            assert "datagrams_in=" in proc.stderr.read()


def test_cli_usage_errors() -> None:
    runner = CliRunner()
    result = runner.invoke(tunnel, ["listen", "--tcp", "nohost", "--udp-target", "h:1"])
    assert result.exit_code == 2 and "HOST:PORT" in result.output
    result = runner.invoke(tunnel, ["connect", "--udp", "127.0.0.1:1"])
    assert result.exit_code == 2 and "--tcp" in result.output
    cert = Path(__file__)
    result = runner.invoke(
        tunnel, ["listen", "--tcp", "h:1", "--udp-target", "h:2", "--tls-cert", str(cert)]
    )
    assert result.exit_code == 2 and "go together" in result.output


# -- NEGATIVE CONTROL: socat, the workaround the tunnel replaces ---------------------------------


@pytest.mark.interop
def test_negative_control_socat_truncates_and_merges(rtpengine: RtpEngineDaemon) -> None:
    """CONTROL, not sipedge: socat's UDP<->TCP relay breaks ng, which is why the tunnel exists.

    socat reads datagrams into an 8192-byte buffer (large replies are cut) and, TCP having no
    boundaries, writes back-to-back commands to rtpengine as one datagram (commands lost).
    """
    socat = shutil.which("socat")
    if not socat:
        pytest.skip("socat is not installed")
    tcp, udp = free_port(), free_port()
    far = [
        socat,
        f"TCP4-LISTEN:{tcp},bind={HOST},reuseaddr,fork",
        f"UDP4:{HOST}:{rtpengine.ng_udp}",
    ]
    near = [socat, f"UDP4-LISTEN:{udp},bind={HOST},reuseaddr,fork", f"TCP4:{HOST}:{tcp}"]
    # Own sessions: "UDP4-LISTEN,fork" children outlive their parent, so the whole group
    # (only processes this test started) is signalled at the end.
    procs = [subprocess.Popen(cmd, start_new_session=True) for cmd in (far, near)]
    try:
        time.sleep(0.3)
        truncated = run(
            _raw_burst(udp, [{"command": "query", "call-id": big_call(rtpengine.ng_udp, "socat")}])
        )
        # a 12 KB reply, cut at socat's 8192-byte buffer: unparseable
        assert [len(d) for d in truncated] == [8192], truncated
        with pytest.raises(ParseError):
            parse_message(truncated[0])
        datagrams = run(_raw_burst(udp, [{"command": "ping"}] * 50))
        pongs = sum(d.count(b"d6:result4:ponge") for d in datagrams)
        print(f"CONTROL socat: 50 pings -> {len(datagrams)} datagrams holding {pongs} pongs")
        assert pongs < 50 or len(datagrams) < pongs  # commands lost or replies merged
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(5)


async def _raw_burst(port: int, bodies: list[dict[str, Any]]) -> list[bytes]:
    with udp_socket() as s:
        s.connect((HOST, port))
        for i, body in enumerate(bodies):
            s.send(encode_message(f"{time.monotonic_ns()}-{i}", body))
        return await recv_all(s, len(bodies), timeout=0.7)
