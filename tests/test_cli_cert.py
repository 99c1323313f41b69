"""``sipedge cert selfsigned`` and :func:`make_selfsigned`: the files load and carry the SANs."""

from __future__ import annotations

import ipaddress
import ssl
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sipedge.cli_cert import cert, make_selfsigned


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def sans(certificate: x509.Certificate) -> tuple[set[str], set[str]]:
    ext = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = {str(ip) for ip in ext.get_values_for_type(x509.IPAddress)}
    return set(ext.get_values_for_type(x509.DNSName)), ips


def test_make_selfsigned_loads_into_ssl_contexts(tmp_path: Path) -> None:
    cert_path, key_path = make_selfsigned(tmp_path / "out", "sip.example.com", ["10.0.0.1"], 30)
    assert (cert_path, key_path) == (tmp_path / "out/cert.pem", tmp_path / "out/key.pem")
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_path, key_path)  # key matches the certificate
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(cafile=cert_path)  # usable as its own trust anchor
    certificate = load(cert_path)
    dns, ips = sans(certificate)
    assert dns == {"sip.example.com"}
    assert ips == {"10.0.0.1", "127.0.0.1", "::1"}
    cn = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert cn == "sip.example.com" and certificate.issuer == certificate.subject
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert 30 * 86400 <= lifetime.total_seconds() <= 30 * 86400 + 3600
    assert isinstance(certificate.public_key(), ec.EllipticCurvePublicKey)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600


def test_rsa_and_no_loopback(tmp_path: Path) -> None:
    cert_path, key_path = make_selfsigned(tmp_path, "a.test", key_type="rsa", loopback=False)
    certificate = load(cert_path)
    assert isinstance(certificate.public_key(), rsa.RSAPublicKey)
    assert certificate.public_key().key_size == 2048  # type: ignore[union-attr]
    assert sans(certificate) == ({"a.test"}, set())
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert_path, key_path)
    with pytest.raises(ValueError):
        make_selfsigned(tmp_path, key_type="dsa")
    with pytest.raises(ValueError):
        make_selfsigned(tmp_path, days=0)


def test_cli_selfsigned(tmp_path: Path) -> None:
    out = tmp_path / "certs"
    args = ["selfsigned", "--out-dir", str(out), "--cn", "edge.test", "--days", "2"]
    result = CliRunner().invoke(cert, [*args, "--san", "alt.test", "--san", "2001:db8::5"])
    assert result.exit_code == 0, result.output
    assert str(out / "cert.pem") in result.output and str(out / "key.pem") in result.output
    dns, ips = sans(load(out / "cert.pem"))
    assert dns == {"edge.test", "alt.test"}
    assert {ipaddress.ip_address(ip) for ip in ips} == {
        ipaddress.ip_address(ip) for ip in ("2001:db8::5", "127.0.0.1", "::1")
    }
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(out / "cert.pem", out / "key.pem")


def test_cli_rejects_bad_input(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cert, ["selfsigned"]).exit_code != 0  # --out-dir is required
    bad_days = runner.invoke(cert, ["selfsigned", "--out-dir", str(tmp_path), "--days", "0"])
    assert bad_days.exit_code != 0 and not (tmp_path / "cert.pem").exists()
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = runner.invoke(cert, ["selfsigned", "--out-dir", str(blocker / "sub")])
    assert result.exit_code == 1 and "cannot make the certificate" in result.output
