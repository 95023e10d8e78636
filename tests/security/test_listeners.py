"""M3/F10: listeners. gRPC used to bind `*:port` by default, /metrics was hard-coded to 0.0.0.0
and render-envoy always bound the gateway listener to 0.0.0.0. Now `server.host` governs gRPC and
metrics, `gateway.listen_host` the Envoy listener, both loopback by default, and a plaintext
non-loopback service bind is refused unless acknowledged."""

from __future__ import annotations

import socket
import time

import pytest

from keeptrusts_authz.config import ConfigError, parse_config
from keeptrusts_authz.config.models import ServerTls
from keeptrusts_authz.envoy_config.render import build_listener
from testing.stack import Stack, stack_config
from tests.fake_provider import FakeProvider


def _non_loopback_ip() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))  # no packet is sent: only picks the route's source
            ip: str = s.getsockname()[0]
        except OSError:
            return None
    return None if ip.startswith("127.") else ip


def test_defaults_are_loopback() -> None:
    cfg = parse_config({}, "test")
    assert cfg.server.host == "127.0.0.1"
    assert cfg.gateway.listen_host == "127.0.0.1"
    assert build_listener(cfg)["address"]["socket_address"]["address"] == "127.0.0.1"


def test_listen_host_governs_the_envoy_listener() -> None:
    cfg = parse_config({"gateway": {"listen_host": "0.0.0.0"}}, "test")
    assert build_listener(cfg)["address"]["socket_address"]["address"] == "0.0.0.0"


def test_non_loopback_plaintext_bind_is_refused_unless_acknowledged() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"server": {"host": "0.0.0.0"}}, "test")
    assert "server.host" in str(err.value.errors)
    assert "allow_plaintext_non_loopback" in str(err.value.errors)
    server = {
        "host": "0.0.0.0",
        "allow_plaintext_non_loopback": True,
        "signing": {"key_file": "/etc/keeptrusts/signing/key"},
    }
    cfg = parse_config({"server": server}, "t")
    assert cfg.server.host == "0.0.0.0"


def test_service_and_metrics_bind_follows_server_host(redis_url: str) -> None:
    """A real `serve` (as make run starts it) with server.host 127.0.0.1: neither gRPC nor the
    scrape (every wallet balance and user id) answers on another interface."""
    other = _non_loopback_ip()
    if other is None:
        pytest.skip("this machine has no non-loopback IPv4 address to probe")
    with FakeProvider() as fake, Stack(stack_config(redis_url, fake.url)) as stack:
        for port in (stack.cfg.server.grpc_port, stack.cfg.server.metrics_port):
            deadline = time.monotonic() + 10
            while True:  # metrics start right after gRPC: wait until loopback answers
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            with pytest.raises(OSError):
                socket.create_connection((other, port), timeout=2).close()


def test_non_loopback_bind_is_fine_with_tls() -> None:
    tls = {"cert_file": "/c", "key_file": "/k", "client_ca_file": "/ca"}
    signing = {"key_file": "/etc/keeptrusts/signing/key"}  # any non-loopback replica needs it
    cfg = parse_config({"server": {"host": "0.0.0.0", "tls": tls, "signing": signing}}, "t")
    assert cfg.server.tls is not None and not cfg.server.allow_plaintext_non_loopback
    cfg = parse_config({"server": {"host": "0.0.0.0", "uds_path": "/run/kt/authz.sock"}}, "t")
    assert cfg.server.uds_path == "/run/kt/authz.sock"
    with pytest.raises(ConfigError) as err:
        parse_config({"server": {"tls": tls, "uds_path": "/run/kt/authz.sock"}}, "t")
    assert "uds_path" in str(err.value.errors)
    with pytest.raises(ConfigError) as err:
        parse_config({"server": {"tls": {"cert_file": "/c"}}}, "t")
    assert "server.tls.key_file" in str(err.value.errors)
    # Review #14: the client identity, not only the CA. Default: the gateway's certificate name.
    assert cfg_tls(tls).allowed_client_names == ["keeptrusts-gateway"]
    assert cfg_tls({**tls, "allowed_client_names": ["a", "b"]}).allowed_client_names == ["a", "b"]
    for bad in ([], [" "]):
        with pytest.raises(ConfigError) as err:
            cfg_tls({**tls, "allowed_client_names": bad})
        assert "server.tls.allowed_client_names" in str(err.value.errors)


def cfg_tls(tls: dict[str, object]) -> ServerTls:
    got = parse_config({"server": {"tls": tls}}, "t").server.tls
    assert got is not None
    return got


def test_gateway_uds_excludes_tls_and_endpoints() -> None:
    tls = {"cert_file": "/c", "key_file": "/k", "ca_file": "/ca", "server_name": "authz"}
    with pytest.raises(ConfigError) as err:
        parse_config({"gateway": {"authz_uds_path": "/s", "authz_tls": tls}}, "t")
    assert "authz_uds_path" in str(err.value.errors)
    with pytest.raises(ConfigError):
        parse_config({"gateway": {"authz_uds_path": "/s", "authz_endpoints": [{"host": "a"}]}}, "t")


def test_tls_service_bind_on_a_non_loopback_address_refuses_plaintext(redis_url: str) -> None:
    """With server.tls a non-loopback bind is allowed: probed on the machine's own address, the
    port completes no plaintext gRPC call and no TLS handshake without a client certificate."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    other = _non_loopback_ip()
    if other is None:
        pytest.skip("this machine has no non-loopback IPv4 address to probe")
    with FakeProvider() as fake:
        cfg = stack_config(redis_url, fake.url)
        cfg["server"]["host"] = other
        cfg["gateway"]["authz_host"] = other
        with Stack(cfg, transport="mtls") as stack:
            port = stack.cfg.server.grpc_port
            socket.create_connection((other, port), timeout=2).close()  # TCP is open...
            assert stack.pki is not None
            creds = grpc.ssl_channel_credentials(stack.pki.ca_file.read_bytes())
            options = [("grpc.ssl_target_name_override", stack.pki.server_name)]
            for channel in (
                grpc.insecure_channel(f"{other}:{port}"),
                grpc.secure_channel(f"{other}:{port}", creds, options),
            ):
                with channel, pytest.raises(grpc.RpcError) as err:  # ...but nothing answers
                    health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(), timeout=3
                    )
                assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            # Envoy (its client certificate; it checks the name keeptrusts-authz) is served.
            status, _, raw = stack.post("/v1/chat/completions", {"model": "gpt-4o-mini"}, key=None)
            assert status == 401, raw
