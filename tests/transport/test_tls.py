"""SIP over TLS (RFC 3261 §26.2) on real loopback sockets, under asyncio and uvloop.

Certificates are made per test session with ``cryptography``: a test CA issues server
certificates (SNI, reload) and client certificates (mutual TLS, profiles).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from transport_support import Received, Runner, make_manager, next_message, sip

from sipedge.cli_cert import make_selfsigned
from sipedge.transport.base import ConnectError, TransportConfig, TransportError
from sipedge.transport.manager import TransportManager
from sipedge.transport.tls import (
    ServerTls,
    TlsClientConfig,
    TlsError,
    TlsServerConfig,
    client_context,
)

HOSTS = ["127.0.0.1", "::1"]

CONFIG = TransportConfig(
    idle_timeout=5.0, message_timeout=5.0, connect_timeout=1.0, close_timeout=0.5
)
Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def manager(config: TransportConfig = CONFIG) -> tuple[TransportManager, Received]:
    return make_manager(config)


# -- certificates -----------------------------------------------------------------------


@dataclass
class Issued:
    cert: Path
    key: Path


class CA:
    """A throw-away certificate authority writing PEM files into a directory."""

    def __init__(self, directory: Path, name: str) -> None:
        self.dir = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.name = subject
        self.cert = (
            self._builder(subject, self.key.public_key(), days=10)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        self.path = directory / f"{name}.pem"
        self.path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def _builder(self, subject: x509.Name, public: Any, days: int) -> x509.CertificateBuilder:
        now = datetime.datetime.now(datetime.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(getattr(self, "name", subject))
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
        )

    def issue(self, cn: str, sans: tuple[str, ...] = (), file: str | None = None) -> Issued:
        """A leaf certificate for ``cn`` (+ SANs, IP literals as IP SANs), server and client."""
        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = []
        for name in (cn, *sans):
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                names.append(x509.DNSName(name))
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        cert = (
            self._builder(subject, key.public_key(), days=2)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        stem = file or cn
        issued = Issued(self.dir / f"{stem}.crt", self.dir / f"{stem}.key")
        issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        issued.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return issued


@dataclass
class Pki:
    ca: CA
    other_ca: CA
    server: Issued  # default.test + loopback SANs
    alpha: Issued
    beta: Issued  # *.beta.test
    client_a: Issued
    client_b: Issued
    rogue_client: Issued  # issued by other_ca


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca, other = CA(directory, "test-ca"), CA(directory, "other-ca")
    return Pki(
        ca,
        other,
        ca.issue("default.test", ("sip.test", "127.0.0.1", "::1")),
        ca.issue("alpha.test"),
        ca.issue("*.beta.test", file="beta"),
        ca.issue("client-a"),
        ca.issue("client-b"),
        other.issue("rogue", file="rogue"),
    )


def server_config(pki: Pki, **options: Any) -> TlsServerConfig:
    return TlsServerConfig(pki.server.cert, pki.server.key, **options)


def client_ssl(cafile: Path | None, cert: Issued | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    if cafile is None:
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    if cert is not None:
        ctx.load_cert_chain(cert.cert, cert.key)
    return ctx


async def tls_connect(
    addr: tuple[str, int], ctx: ssl.SSLContext, server_hostname: str | None = None
) -> Stream:
    return await asyncio.open_connection(
        addr[0], addr[1], ssl=ctx, server_hostname=server_hostname or addr[0]
    )


def peer_cn(writer: asyncio.StreamWriter) -> str:
    cert = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    parsed = x509.load_der_x509_certificate(cert)
    return str(parsed.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


async def closed_by_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """True if the server drops the connection (EOF, reset or TLS alert) after a message."""
    try:
        writer.write(sip())
        return await asyncio.wait_for(reader.read(), 1.0) == b""
    except (ssl.SSLError, ConnectionError):
        return True


# -- contexts ---------------------------------------------------------------------------


def test_contexts_have_sane_defaults(pki: Pki) -> None:
    for ciphers in (None, "ALL:eNULL:RC4:3DES:EXPORT"):
        ctx = ServerTls(server_config(pki, ciphers=ciphers)).context
        assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
        names = [c["name"] for c in ctx.get_ciphers()]
        assert any(c["protocol"] == "TLSv1.3" for c in ctx.get_ciphers())
        assert any("ECDHE" in name and "GCM" in name for name in names)
        for weak in ("RC4", "DES-CBC3", "NULL", "EXP", "MD5"):
            assert not [name for name in names if weak in name], weak
    assert ServerTls(server_config(pki, min_version="1.3")).context.minimum_version == (
        ssl.TLSVersion.TLSv1_3
    )
    client = client_context(TlsClientConfig(ca_bundle=pki.ca.path))
    assert client.check_hostname and client.verify_mode == ssl.CERT_REQUIRED
    assert client.minimum_version == ssl.TLSVersion.TLSv1_2


def test_bad_configurations_raise_tls_error(pki: Pki, tmp_path: Path) -> None:
    bad = [
        server_config(pki, min_version="1.1"),
        server_config(pki, ciphers="NOSUCHCIPHER"),
        server_config(pki, require_client_cert=True),  # no client_ca
        server_config(pki, client_ca=tmp_path / "missing.pem"),
        TlsServerConfig(pki.server.cert, pki.alpha.key),  # key does not match
        TlsServerConfig(tmp_path / "missing.pem", pki.server.key),
        server_config(pki, sni={"x.test": (pki.alpha.cert, tmp_path / "none")}),
    ]
    for config in bad:
        with pytest.raises(TlsError):
            ServerTls(config)
    with pytest.raises(TlsError):
        client_context(TlsClientConfig(ca_bundle=tmp_path / "missing.pem"))
    with pytest.raises(TlsError):
        client_context(TlsClientConfig(key=pki.client_a.key))


# -- inbound ----------------------------------------------------------------------------


@pytest.mark.parametrize("host", HOSTS)
def test_tls_message_both_ways(run: Runner, pki: Pki, host: str, tmp_path: Path) -> None:
    cert, key = make_selfsigned(tmp_path, "edge.test")  # the CLI helper's certificate

    async def main() -> None:
        mgr, queue = manager()
        local = await mgr.start_listener("tls", host, 0, tls=TlsServerConfig(cert, key))
        assert ("tls", local) in mgr.listeners()
        reader, writer = await tls_connect(local, client_ssl(cert))
        writer.write(sip(b"one") + sip(b"two")[:20])
        writer.write(sip(b"two")[20:])
        (first, flow), (second, flow2) = await next_message(queue), await next_message(queue)
        assert (first, second) == (sip(b"one"), sip(b"two"))
        assert flow == flow2 and flow.transport == "tls" and flow.local == local
        assert flow.remote == writer.get_extra_info("sockname")[:2]
        assert mgr.send(sip(b"reply"), flow)
        assert await reader.readexactly(len(sip(b"reply"))) == sip(b"reply")
        [info] = mgr.connections()
        assert info.inbound and info.flow == flow
        writer.close()
        await mgr.close()

    run(main())


def test_sni_selects_the_certificate(run: Runner, pki: Pki) -> None:
    sni = {
        "alpha.test": (pki.alpha.cert, pki.alpha.key),
        "*.beta.test": (pki.beta.cert, pki.beta.key),
    }

    async def main() -> None:
        mgr, _ = manager()
        local = await mgr.start_listener("tls", "127.0.0.1", 0, tls=server_config(pki, sni=sni))
        expected = {
            "alpha.test": "alpha.test",
            "ALPHA.test.": "alpha.test",
            "x.beta.test": "*.beta.test",
            "a.b.beta.test": "default.test",  # a wildcard covers one label only
            "unknown.test": "default.test",
            None: "default.test",  # no SNI at all
        }
        ctx = client_ssl(pki.ca.path)
        ctx.check_hostname = False  # the name is checked by hand below
        for name, cn in expected.items():
            _, writer = await asyncio.open_connection(*local, ssl=ctx, server_hostname=name)
            assert peer_cn(writer) == cn, name
            writer.close()
        # With host name checking on, the selected certificate verifies for its name.
        _, writer = await tls_connect(local, client_ssl(pki.ca.path), "alpha.test")
        writer.close()
        await mgr.close()

    run(main())


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
def test_tls_1_1_client_is_refused(run: Runner, pki: Pki) -> None:
    def old_client() -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        return ctx

    async def main() -> None:
        # Control: a permissive server shows this client can speak TLS 1.1 at all.
        permissive = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        permissive.set_ciphers("DEFAULT:@SECLEVEL=0")
        permissive.minimum_version = ssl.TLSVersion.TLSv1
        permissive.load_cert_chain(pki.server.cert, pki.server.key)
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=permissive)
        try:
            _, writer = await asyncio.open_connection(
                *server.sockets[0].getsockname()[:2], ssl=old_client()
            )
        except (ssl.SSLError, ConnectionError):
            server.close()
            pytest.skip("this OpenSSL build cannot speak TLS 1.1")
        assert writer.get_extra_info("ssl_object").version() == "TLSv1.1"
        writer.close()
        server.close()
        mgr, _ = manager()
        local = await mgr.start_listener("tls", "127.0.0.1", 0, tls=server_config(pki))
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await asyncio.open_connection(*local, ssl=old_client())
        assert mgr.connections() == []
        await mgr.close()

    run(main())


def test_mutual_tls(run: Runner, pki: Pki) -> None:
    async def main() -> None:
        mgr, queue = manager()
        config = server_config(pki, client_ca=pki.ca.path, require_client_cert=True)
        local = await mgr.start_listener("tls", "127.0.0.1", 0, tls=config)
        for client_cert in (None, pki.rogue_client):
            try:
                stream = await tls_connect(local, client_ssl(pki.ca.path, client_cert))
            except (ssl.SSLError, ConnectionError):
                continue  # refused during the handshake (TLS 1.2 style)
            assert await closed_by_server(*stream)  # TLS 1.3: refused after the client's Finished
            stream[1].close()
        assert queue.empty()
        _, writer = await tls_connect(local, client_ssl(pki.ca.path, pki.client_a))
        writer.write(sip(b"authenticated"))
        data, flow = await next_message(queue)
        assert data == sip(b"authenticated") and flow.transport == "tls"
        writer.close()
        await mgr.close()

    run(main())


def test_tls_handshake_must_complete_in_time(run: Runner, pki: Pki) -> None:
    async def main() -> None:
        mgr, _ = manager(replace(CONFIG, message_timeout=0.2))
        local = await mgr.start_listener("tls", "127.0.0.1", 0, tls=server_config(pki))
        loop = asyncio.get_running_loop()
        started = loop.time()
        reader, writer = await asyncio.open_connection(*local)  # plain TCP, never says hello
        with contextlib.suppress(ConnectionResetError):
            assert await asyncio.wait_for(reader.read(), 2.0) == b""
        assert 0.15 < loop.time() - started < 1.0
        writer.close()
        await mgr.close()

    run(main())


def test_reload_swaps_the_certificate_for_new_connections(run: Runner, pki: Pki) -> None:
    cert, key = pki.ca.dir / "live.crt", pki.ca.dir / "live.key"

    def install(source: Issued) -> None:
        cert.write_bytes(source.cert.read_bytes())
        key.write_bytes(source.key.read_bytes())

    async def main() -> None:
        install(pki.alpha)
        mgr, queue = manager()
        local = await mgr.start_listener("tls", "127.0.0.1", 0, tls=TlsServerConfig(cert, key))
        ctx = client_ssl(pki.ca.path)
        ctx.check_hostname = False
        old_reader, old_writer = await tls_connect(local, ctx)
        assert peer_cn(old_writer) == "alpha.test"
        install(pki.client_b)
        _, writer = await tls_connect(local, ctx)
        assert peer_cn(writer) == "alpha.test"  # not reloaded yet
        writer.close()
        mgr.reload_tls()
        _, writer = await tls_connect(local, ctx)
        assert peer_cn(writer) == "client-b"
        writer.close()
        key.write_bytes(b"garbage")
        with pytest.raises(TlsError):
            mgr.reload_tls()
        _, writer = await tls_connect(local, ctx)
        assert peer_cn(writer) == "client-b"  # a failed reload keeps the previous files
        writer.close()
        old_writer.write(sip(b"still here"))  # the old connection keeps working
        data, flow = await next_message(queue)
        assert data == sip(b"still here") and mgr.send(sip(b"ok"), flow)
        assert await old_reader.readexactly(len(sip(b"ok"))) == sip(b"ok")
        old_writer.close()
        await mgr.close()

    run(main())


# -- outbound ---------------------------------------------------------------------------


@pytest.mark.parametrize("host", HOSTS)
def test_send_to_tls_verifies_the_server(run: Runner, pki: Pki, host: str) -> None:
    async def main() -> None:
        server, inbox = manager()
        target = await server.start_listener("tls", host, 0, tls=server_config(pki))
        client, replies = manager()
        own = await client.start_listener("tls", host, 0, tls=server_config(pki))
        client.add_tls_profile(None, TlsClientConfig(ca_bundle=pki.ca.path))
        client.add_tls_profile("wrong-ca", TlsClientConfig(ca_bundle=pki.other_ca.path))
        with pytest.raises(ConnectError):
            await client.send_to(sip(), "tls", *target, server_name="other.test")
        with pytest.raises(ConnectError):
            await client.send_to(sip(), "tls", *target, tls_profile="wrong-ca")
        with pytest.raises(TransportError):
            await client.send_to(sip(), "tls", *target, tls_profile="no-such-profile")
        assert client.connections() == [] and inbox.empty()
        flow = await client.send_to(sip(b"hello"), "tls", *target, server_name="sip.test")
        assert flow.transport == "tls" and flow.remote == target and flow.local == own
        data, back = await next_message(inbox)
        assert data == sip(b"hello") and back.transport == "tls"
        assert server.send(sip(b"answer"), back)
        assert await next_message(replies) == (sip(b"answer"), flow)
        by_ip = await client.send_to(sip(b"again"), "tls", *target)  # IP SAN, reused
        assert by_ip == flow and len(client.connections()) == 1
        await client.close()
        await server.close()

    run(main())


class CertPeer:
    """A TLS server standing in for a remote element: records each client's certificate."""

    def __init__(self, pki: Pki) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(pki.server.cert, pki.server.key)
        self.ctx.load_verify_locations(cafile=pki.ca.path)
        self.ctx.verify_mode = ssl.CERT_OPTIONAL
        self.received: asyncio.Queue[tuple[str | None, bytes]] = asyncio.Queue()
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> tuple[str, int]:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ctx)
        return self.server.sockets[0].getsockname()[:2]  # type: ignore[no-any-return]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        binary = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        who = None
        if binary:
            cert = x509.load_der_x509_certificate(binary)
            who = str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
        while data := await reader.read(4096):
            self.received.put_nowait((who, data))

    async def close(self) -> None:
        for writer in self.writers:
            writer.close()
        self.server.close()


def test_reuse_is_keyed_by_tls_profile(run: Runner, pki: Pki) -> None:
    async def main() -> None:
        peer = CertPeer(pki)
        target = await peer.start()
        mgr, _ = manager()
        mgr.add_tls_profile(None, TlsClientConfig(ca_bundle=pki.ca.path))
        for name, issued in (("a", pki.client_a), ("b", pki.client_b)):
            mgr.add_tls_profile(
                name, TlsClientConfig(pki.ca.path, cert=issued.cert, key=issued.key)
            )
        sends = [("a", b"1"), ("b", b"2"), (None, b"3"), ("a", b"4"), ("b", b"5"), (None, b"6")]
        flows = {}
        for profile, body in sends:
            flow = await mgr.send_to(sip(body), "tls", *target, tls_profile=profile)
            flows.setdefault(profile, set()).add(flow)
            who, data = await asyncio.wait_for(peer.received.get(), 1.0)
            assert data == sip(body)
            assert who == {"a": "client-a", "b": "client-b", None: None}[profile]
        assert all(len(same) == 1 for same in flows.values())  # reused within a profile
        assert len({flow.conn_id for same in flows.values() for flow in same}) == 3
        assert len(mgr.connections()) == 3
        await peer.close()
        await mgr.close()

    run(main())


def test_tls_listener_needs_a_configuration(run: Runner, pki: Pki) -> None:
    async def main() -> None:
        mgr, _ = manager()
        with pytest.raises(TransportError):
            await mgr.start_listener("tls", "127.0.0.1", 0)
        with pytest.raises(TransportError):
            await mgr.start_listener("tcp", "127.0.0.1", 0, tls=server_config(pki))
        ctx = ServerTls(server_config(pki)).context  # a ready SSLContext is accepted too
        assert (await mgr.start_listener("tls", "127.0.0.1", 0, tls=ctx))[1] > 0
        await mgr.close()

    run(main())
