"""``sipedge cert``: certificate helpers for TLS and WSS listeners.

``sipedge cert selfsigned --out-dir DIR`` writes a self-signed certificate (``cert.pem``)
and its private key (``key.pem``, mode 0600) for testing and lab setups. The subject
alternative names are the given names plus 127.0.0.1 and ::1 (unless ``--no-loopback``);
the common name is added as a DNS name too, since peers match only SANs (RFC 6125 §6.4.4).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from pathlib import Path

import click
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK_SANS = ("127.0.0.1", "::1")
KEY_TYPES = ("ec", "rsa")

_PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _san_entry(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _san_list(cn: str, sans: Sequence[str], loopback: bool) -> list[x509.GeneralName]:
    names = [cn, *sans, *(LOOPBACK_SANS if loopback else ())]
    entries: list[x509.GeneralName] = []
    for name in names:
        entry = _san_entry(name.strip())
        if entry not in entries:
            entries.append(entry)
    return entries


def _new_key(key_type: str) -> _PrivateKey:
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f"key_type must be one of {KEY_TYPES}, not {key_type!r}")


def _build_cert(
    key: _PrivateKey, cn: str, sans: list[x509.GeneralName], days: int
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    usage_rsa = isinstance(key, rsa.RSAPrivateKey)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=usage_rsa,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def make_selfsigned(
    out_dir: Path,
    cn: str = "sipedge",
    sans: Sequence[str] = (),
    days: int = 365,
    *,
    key_type: str = "ec",
    loopback: bool = True,
) -> tuple[Path, Path]:
    """Write ``cert.pem`` and ``key.pem`` into ``out_dir`` (created if needed).

    The certificate is self-signed for ``cn``, valid ``days`` days, with SANs for
    ``cn``, ``sans`` (IP literals become IP SANs) and, with ``loopback``, 127.0.0.1 and
    ::1. ``key_type`` is ``"ec"`` (P-256) or ``"rsa"`` (2048 bits). Returns
    (cert_path, key_path); ValueError for a bad ``days`` or ``key_type``.
    """
    if days <= 0:
        raise ValueError("days must be positive")
    key = _new_key(key_type)
    cert = _build_cert(key, cn, _san_list(cn, sans, loopback), days)
    out_dir.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = out_dir / "cert.pem", out_dir / "key.pem"
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as key_file:
        key_file.write(key_pem)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


@click.group()
def cert() -> None:
    """Certificate helpers for TLS and WSS listeners."""


@cert.command()
@click.option(
    "--out-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write cert.pem and key.pem into.",
)
@click.option("--cn", default="sipedge", show_default=True, help="Subject common name.")
@click.option("--san", "sans", multiple=True, metavar="NAME", help="DNS name or IP (repeatable).")
@click.option("--days", default=365, show_default=True, type=click.IntRange(min=1))
@click.option("--key-type", type=click.Choice(KEY_TYPES), default="ec", show_default=True)
@click.option("--no-loopback", is_flag=True, help="Do not add 127.0.0.1 and ::1 as SANs.")
def selfsigned(
    out_dir: Path, cn: str, sans: Sequence[str], days: int, key_type: str, no_loopback: bool
) -> None:
    """Write a self-signed certificate and key for testing."""
    try:
        cert_path, key_path = make_selfsigned(
            out_dir, cn, sans, days, key_type=key_type, loopback=not no_loopback
        )
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot make the certificate: {exc}") from exc
    click.echo(f"certificate: {cert_path}")
    click.echo(f"private key: {key_path}")
