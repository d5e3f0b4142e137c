"""Certificates for a loopback control plane: a CA, the apiserver's serving cert, an admin client cert
and the service-account signing key."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def _cert(subject: x509.Name, key, issuer: x509.Name, issuer_key, *, ca: bool, sans=(), usage=None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _name(cn: str, org: str | None = None) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(parts)


def make_pki(directory: Path) -> dict[str, Path]:
    """Writes the PKI into `directory`; returns the file paths by role."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {
        name: directory / f"{name}.pem"
        for name in ("ca", "ca-key", "server", "server-key", "admin", "admin-key", "sa-key", "sa-pub")
    }
    ca_key = _key()
    ca = _cert(_name("mixtura-testbed-ca"), ca_key, _name("mixtura-testbed-ca"), ca_key, ca=True)
    sans = [
        x509.DNSName("localhost"),
        x509.DNSName("kubernetes.default"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("10.96.0.1")),
    ]
    server_key, admin_key, sa_key = _key(), _key(), _key()
    server = _cert(
        _name("kube-apiserver"),
        server_key,
        ca.subject,
        ca_key,
        ca=False,
        sans=sans,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
    )
    admin = _cert(
        _name("admin", "system:masters"),
        admin_key,
        ca.subject,
        ca_key,
        ca=False,
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    for name, cert in (("ca", ca), ("server", server), ("admin", admin)):
        paths[name].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    for name, key in (
        ("ca-key", ca_key),
        ("server-key", server_key),
        ("admin-key", admin_key),
        ("sa-key", sa_key),
    ):
        _write_key(paths[name], key)
    paths["sa-pub"].write_bytes(
        sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return paths
