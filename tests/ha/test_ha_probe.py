"""The OPTIONS health check of the resource agent, against small in-test responders."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from sipedge.ha.probe import main, options_request, probe, status_of

HOST = "127.0.0.1"


class UdpResponder:
    """Answers every datagram with ``reply`` (after ignoring the first ``drop`` ones)."""

    def __init__(self, status: int, drop: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.status, self.drop = status, drop
        self.received: list[bytes] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            self.received.append(data)
            if len(self.received) > self.drop:
                self.sock.sendto(b"SIP/2.0 100 Trying\r\n\r\n", addr)
                self.sock.sendto(f"SIP/2.0 {self.status} X\r\n\r\n".encode(), addr)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture
def responder(request: pytest.FixtureRequest) -> Iterator[UdpResponder]:
    status, drop = request.param
    r = UdpResponder(status, drop)
    yield r
    r.close()


def test_request_is_an_options_to_the_proxy_itself() -> None:
    text = options_request("10.99.0.100", 5060, "udp", ("10.99.0.1", 4000)).decode()
    assert text.startswith("OPTIONS sip:10.99.0.100:5060 SIP/2.0\r\n")
    assert "Via: SIP/2.0/UDP 10.99.0.1:4000;branch=z9hG4bK-" in text and text.endswith("\r\n\r\n")
    assert "[2001:db8::1]:5060" in options_request("2001:db8::1", 5060, "tcp", ("::1", 1)).decode()
    assert (status_of(b"SIP/2.0 200 OK\r\n"), status_of(b"OPTIONS x SIP/2.0"), status_of(b"")) == (
        200,
        None,
        None,
    )


@pytest.mark.parametrize("responder", [(200, 0)], indirect=True)
def test_2xx_is_healthy(responder: UdpResponder) -> None:
    assert probe(HOST, responder.port, timeout=1.0) == 200
    assert main([HOST, str(responder.port), "--timeout", "1"]) == 0


@pytest.mark.parametrize("responder", [(503, 0)], indirect=True)
def test_a_draining_proxy_is_not_healthy(responder: UdpResponder) -> None:
    assert main([HOST, str(responder.port), "--timeout", "1"]) == 1


@pytest.mark.parametrize("responder", [(200, 1)], indirect=True)
def test_a_lost_request_is_resent(responder: UdpResponder) -> None:
    assert probe(HOST, responder.port, timeout=2.0) == 200
    assert len(responder.received) == 2 and responder.received[0] == responder.received[1]


def test_no_answer_within_the_timeout() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind((HOST, 0))  # bound, never answers
        started = time.monotonic()
        assert main([HOST, str(silent.getsockname()[1]), "--timeout", "0.4"]) == 2
        assert time.monotonic() - started < 1.5
    with socket.socket() as closed:
        closed.bind((HOST, 0))
        port = closed.getsockname()[1]
    assert probe(HOST, port, "tcp", 0.5) is None


def test_tcp_answer() -> None:
    with socket.socket() as server:
        server.bind((HOST, 0))
        server.listen()

        def answer() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(65535)
                conn.sendall(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n")

        t = threading.Thread(target=answer, daemon=True)
        t.start()
        assert probe(HOST, server.getsockname()[1], "tcp", 1.0) == 200
        t.join()
