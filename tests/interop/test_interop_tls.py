"""TLS through a running sipedge: certificate reload on SIGHUP, and mutual TLS to a trunk.

The "trunk" is a small TLS server in the test that requires a client certificate signed by
its own CA, answers an OPTIONS with 200 and records the client certificate it saw.
"""

from __future__ import annotations

import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sipedge.cli_cert import make_selfsigned


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peer_cn(port: int, ca: Path) -> str:
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.check_hostname = False
    with (
        socket.create_connection(("127.0.0.1", port), timeout=3) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        cert = tls.getpeercert()
    assert cert is not None
    for rdn in cert["subject"]:
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return ""


def start(tmp: Path, toml: str, port: int, transport: str = "udp") -> subprocess.Popen[bytes]:
    cfg = tmp / "sipedge.toml"
    cfg.write_text(toml)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sipedge", "run", "--config", str(cfg)],
        stderr=subprocess.PIPE,
        cwd=tmp,
    )
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"sipedge did not listen on {port}: {proc.communicate()[1]!r}")


def stop(proc: subprocess.Popen[bytes]) -> bytes:
    proc.terminate()
    _, err = proc.communicate(timeout=10)
    return err


@pytest.mark.interop
def test_sighup_reloads_the_certificate(tmp_path: Path) -> None:
    a = tmp_path / "a"
    b = tmp_path / "b"
    cert_a, key_a = make_selfsigned(a, cn="cert-a")
    cert_b, key_b = make_selfsigned(b, cn="cert-b")
    live_cert, live_key = tmp_path / "live.pem", tmp_path / "live.key"
    live_cert.write_bytes(cert_a.read_bytes())
    live_key.write_bytes(key_a.read_bytes())
    port = free_port()
    proc = start(
        tmp_path,
        f'[server]\nlisten = ["tls:127.0.0.1:{port}"]\nstate_dir = "{tmp_path}/state"\n'
        f'[tls]\ncert = "{live_cert}"\nkey = "{live_key}"\n',
        port,
    )
    try:
        assert peer_cn(port, cert_a) == "cert-a"
        live_cert.write_bytes(cert_b.read_bytes())
        live_key.write_bytes(key_b.read_bytes())
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        seen = ""
        while time.monotonic() < deadline:
            try:
                seen = peer_cn(port, cert_b)
                break
            except ssl.SSLError:
                time.sleep(0.1)  # still the old certificate: not reloaded yet
        assert seen == "cert-b"
    finally:
        err = stop(proc)
    assert b"Traceback" not in err


class Trunk:
    """A TLS 'trunk' requiring a client certificate; answers OPTIONS/INVITE with a 200/486."""

    def __init__(self, cert: Path, key: Path, client_ca: Path) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.load_verify_locations(cafile=str(client_ca))
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = int(self.sock.getsockname()[1])
        self.client_cns: list[str] = []
        self.requests: list[bytes] = []
        self.refused = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.sock.settimeout(15)
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            try:
                conn = self.ctx.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError):
                self.refused += 1
                continue
            cert = conn.getpeercert() or {}
            for rdn in cert.get("subject", ()):
                for k, v in rdn:
                    if k == "commonName":
                        self.client_cns.append(str(v))
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: ssl.SSLSocket) -> None:
        conn.settimeout(10)
        buf = b""
        try:
            while b"\r\n\r\n" not in buf:
                chunk = conn.recv(65535)
                if not chunk:
                    return
                buf += chunk
        except OSError:
            return
        self.requests.append(buf)
        head = buf.split(b"\r\n\r\n", 1)[0].decode()
        keep = [
            line
            for line in head.split("\r\n")[1:]
            if line.split(":", 1)[0].strip().lower() in ("via", "from", "to", "call-id", "cseq")
        ]
        reply = "SIP/2.0 486 Busy Here\r\n" + "\r\n".join(keep)
        reply = reply.replace("\r\nTo: <sip:trunk@x>", "\r\nTo: <sip:trunk@x>;tag=t")
        conn.sendall((reply + "\r\nContent-Length: 0\r\n\r\n").encode())
        time.sleep(0.5)
        conn.close()


@pytest.mark.interop
def test_mutual_tls_to_a_trunk_uses_the_profile_certificate(tmp_path: Path) -> None:
    trunk_cert, trunk_key = make_selfsigned(tmp_path / "trunk", cn="trunk")
    client_cert, client_key = make_selfsigned(tmp_path / "client", cn="sipedge-client")
    trunk = Trunk(trunk_cert, trunk_key, client_ca=client_cert)
    port = free_port()
    proc = start(
        tmp_path,
        f'[server]\nlisten = ["udp:127.0.0.1:{port}", "tcp:127.0.0.1:{port}",'
        f' "tls:127.0.0.1:{port + 1 if port < 65000 else port - 1}"]\n'
        f'state_dir = "{tmp_path}/state"\n'
        f'[tls]\ncert = "{client_cert}"\nkey = "{client_key}"\nca_bundle = "{trunk_cert}"\n'
        f'[[tls.profiles]]\nname = "trunk"\nca_bundle = "{trunk_cert}"\n'
        f'cert = "{client_cert}"\nkey = "{client_key}"\n'
        f'[[proxy.routes]]\nname = "trunk"\nuser_prefix = "00"\n'
        f'to = "sip:127.0.0.1:{trunk.port};transport=tls"\ntls_profile = "trunk"\n',
        port,
    )
    try:
        msg = (
            f"INVITE sip:0044123@127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKmtls;rport\r\n"
            "From: <sip:caller@example.net>;tag=f1\r\nTo: <sip:trunk@x>\r\n"
            "Call-ID: mtls-1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
            "Contact: <sip:caller@127.0.0.1:9>\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(6)
            s.sendto(msg, ("127.0.0.1", port))
            statuses = []
            deadline = time.monotonic() + 6
            while time.monotonic() < deadline and 486 not in statuses:
                data = s.recv(65535)
                statuses.append(int(data.split(b" ", 2)[1]))
        assert 486 in statuses, statuses  # the trunk's answer came back over mutual TLS
        assert trunk.client_cns == ["sipedge-client"]  # our profile's client certificate
        assert trunk.requests and trunk.requests[0].startswith(b"INVITE sip:0044123@")
        assert b"SIP/2.0/TLS" in trunk.requests[0]
    finally:
        err = stop(proc)
    assert b"Traceback" not in err
