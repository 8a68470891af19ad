"""``chattts-server certs DIR``: a development CA, a server and a client certificate for mTLS.

Written with the ``cryptography`` library (no openssl subprocess): ``ca.pem``, ``server.pem``,
``server-key.pem`` (SANs: localhost, 127.0.0.1, ::1 and any given names), ``client.pem``,
``client-key.pem``. Private keys are written with mode 0600. For development and tests only.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from pathlib import Path


def _write(path: Path, data: bytes, private: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(path, flags, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    if private:
        os.chmod(path, 0o600)


def make_dev_certs(directory: Path, names: Sequence[str] = (), days: int = 365) -> dict[str, Path]:
    """Create the CA, server and client files in ``directory``; returns their paths by role."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("chattts-server dev CA"))
        .issuer_name(name("chattts-server dev CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(
        cn: str, usage: x509.ObjectIdentifier, sans: list[x509.GeneralName]
    ) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), key_pem(key)

    sans: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    for extra in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(extra)))
        except ValueError:
            sans.append(x509.DNSName(extra))
    server_pem, server_key = leaf("localhost", ExtendedKeyUsageOID.SERVER_AUTH, sans)
    client_pem, client_key = leaf("chattts-client", ExtendedKeyUsageOID.CLIENT_AUTH, [])
    paths = {
        "ca": directory / "ca.pem",
        "server": directory / "server.pem",
        "server_key": directory / "server-key.pem",
        "client": directory / "client.pem",
        "client_key": directory / "client-key.pem",
    }
    _write(paths["ca"], ca.public_bytes(serialization.Encoding.PEM), private=False)
    _write(directory / "ca-key.pem", key_pem(ca_key), private=True)
    _write(paths["server"], server_pem, private=False)
    _write(paths["server_key"], server_key, private=True)
    _write(paths["client"], client_pem, private=False)
    _write(paths["client_key"], client_key, private=True)
    return paths
