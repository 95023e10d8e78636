"""edge.md "Left": certificates were read once at start, so after a cert-manager renewal the old
certificate stayed in use until a rollout restart. Now the service re-reads `server.tls`'s files
when they change (grpc dynamic server credentials: checked at each new handshake), so a new
connection is served with the renewed certificate, without a restart. Connections already open
keep theirs; a half-written or mismatched pair is not taken (the old one stays)."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from pathlib import Path

import grpc
from cryptography import x509
from grpc_health.v1 import health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from keeptrusts_authz.config import parse_config
from keeptrusts_authz.devcerts import Authority, DevPki, generate, tls_config
from keeptrusts_authz.server import bind_grpc


def _replace(target: Path, source: Path) -> None:
    """As a Kubernetes Secret volume does: the new content appears at once."""
    tmp = target.with_suffix(".new")
    tmp.write_bytes(source.read_bytes())
    os.replace(tmp, target)


def _presented_serial(port: int, pki: DevPki) -> int:
    """Open a fresh TLS connection (Envoy's client certificate, ALPN h2) and return the serial of
    the certificate the server presents."""
    ctx = ssl.create_default_context(cafile=str(pki.ca_file))
    ctx.check_hostname = False
    ctx.load_cert_chain(str(pki.client.cert_file), str(pki.client.key_file))
    ctx.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname=pki.server_name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def _serial(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


def test_a_renewed_server_certificate_is_served_to_new_connections(tmp_path: Path) -> None:
    pki = generate(tmp_path / "tls")
    server_tls, _ = tls_config(pki)
    settings = parse_config({"server": {"grpc_port": 0, "tls": server_tls}}, "t").server
    ca = Authority.load(pki.ca_file, pki.ca_key_file)
    renewed = ca.issue(
        tmp_path, "renewed", pki.server_name, [pki.server_name, "127.0.0.1"], server=True
    )
    mismatched = ca.issue(tmp_path, "other", pki.server_name, [pki.server_name], server=True)

    async def run() -> tuple[int, int, int]:
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(HealthServicer(), server)
        _, port = bind_grpc(server, settings, port=0)
        await server.start()
        try:
            first = await asyncio.to_thread(_presented_serial, port, pki)
            # cert-manager renews: a new key and certificate at the same paths.
            _replace(pki.server.cert_file, renewed.cert_file)
            _replace(pki.server.key_file, renewed.key_file)
            second = await asyncio.to_thread(_presented_serial, port, pki)
            # Mid-rotation (the new certificate, the old key): keep serving the last good pair.
            _replace(pki.server.cert_file, mismatched.cert_file)
            third = await asyncio.to_thread(_presented_serial, port, pki)
            return first, second, third
        finally:
            await server.stop(0)

    first, second, third = asyncio.run(run())
    original = first
    assert second == _serial(renewed.cert_file) != original
    assert third == second
