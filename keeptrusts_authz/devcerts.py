"""A throwaway certificate authority for `make run` and the tests: one CA, the authz service's
server certificate and the gateway's (Envoy's) client certificate, so the gRPC port can require
client certificates (`server.tls`) the way a deployment with cert-manager does.

Never for production: the CA key sits next to the certificates, in a directory only the user
who ran `make run` can read.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=30)


@dataclass(frozen=True)
class Issued:
    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class DevPki:
    ca_file: Path
    ca_key_file: Path  # 0600; lets a test issue more certificates from the same CA
    server: Issued  # the authz service (server.tls)
    client: Issued  # the gateway, i.e. Envoy (gateway.authz_tls)
    server_name: str  # what the server certificate names (SAN); Envoy checks it


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def write_secret(path: Path, data: bytes) -> None:
    """Write a file only its owner can read: created 0600, and an existing file (an earlier run's,
    perhaps world-readable) truncated and chmod-ed to 0600 before anything is written into it
    (`Path.touch(mode=...)` leaves an existing file's mode as it was)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    write_secret(
        path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


class Authority:
    """A self-signed CA that issues leaf certificates (EC P-256)."""

    def __init__(self, common_name: str = "keeptrusts dev CA") -> None:
        now = dt.datetime.now(dt.UTC)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(_name(common_name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
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
            .sign(self.key, hashes.SHA256())
        )

    @classmethod
    def load(cls, cert_file: Path, key_file: Path) -> Authority:
        """The CA that `write_ca` wrote (to issue more certificates from it)."""
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        ca = cls.__new__(cls)
        ca.key = key
        ca.cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        return ca

    def write_ca(self, path: Path) -> Path:
        path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        _write_key(self.key, path.with_suffix(".key"))
        return path

    def issue(
        self, directory: Path, stem: str, common_name: str, sans: list[str], *, server: bool
    ) -> Issued:
        now = dt.datetime.now(dt.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if sans:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_san(n) for n in sans]), critical=False
            )
        cert = builder.sign(self.key, hashes.SHA256())
        cert_file = directory / f"{stem}.crt"
        key_file = directory / f"{stem}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, key_file)
        return Issued(cert_file, key_file)


def generate(directory: Path, server_name: str = "keeptrusts-authz") -> DevPki:
    """A CA, the service's certificate (SANs: `server_name`, localhost, 127.0.0.1) and Envoy's
    client certificate, written under `directory` (created with mode 0700)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    ca = Authority()
    sans = list(dict.fromkeys([server_name, "localhost", "127.0.0.1"]))
    return DevPki(
        ca_file=ca.write_ca(directory / "ca.crt"),
        ca_key_file=directory / "ca.key",
        server=ca.issue(directory, "authz-server", server_name, sans, server=True),
        client=ca.issue(directory, "gateway-client", "keeptrusts-gateway", [], server=False),
        server_name=server_name,
    )


def tls_config(pki: DevPki) -> tuple[dict[str, str], dict[str, str]]:
    """(`server.tls`, `gateway.authz_tls`) config blocks for these certificates."""
    server = {
        "cert_file": str(pki.server.cert_file.resolve()),
        "key_file": str(pki.server.key_file.resolve()),
        "client_ca_file": str(pki.ca_file.resolve()),
    }
    gateway = {
        "cert_file": str(pki.client.cert_file.resolve()),
        "key_file": str(pki.client.key_file.resolve()),
        "ca_file": str(pki.ca_file.resolve()),
        "server_name": pki.server_name,
    }
    return server, gateway
