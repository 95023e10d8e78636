"""Item 2 / C1-C2 (reach): only the proxy reaches the service.

Attack: the gRPC port (Check, StreamAccessLogs, the wallet API) answered anyone who could connect;
a direct Check or a forged access-log entry needed nothing but a TCP connection. Now, with
`server.tls`, the port requires a client certificate from the configured CA (Envoy's, rendered
into the authz clusters by render-envoy): a caller without one, or with one from another CA, gets
no answer at all, while the real Envoy with its client certificate settles requests exactly. In
sidecar mode (`server.uds_path`) the service listens on a Unix socket only and no TCP port.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from keeptrusts_authz.api.gen.keeptrusts.wallet.v1 import wallet_pb2, wallet_pb2_grpc
from keeptrusts_authz.devcerts import Authority, generate
from keeptrusts_authz.pricing import PriceTable
from testing.redis_server import RedisServer, empty_keeping_epochs, free_port
from testing.stack import Stack, stack_config
from tests.fake_provider import FakeProvider

pytestmark = pytest.mark.envoy

USD = 1_000_000
CHAT = {"model": "gpt-4o-mini", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, provider: FakeProvider) -> Iterator[Stack]:
    cfg = stack_config(redis_server.url, provider.url)
    cfg["server"]["health_port"] = free_port()  # kubelet probes: health only, plaintext
    with Stack(cfg, transport="mtls") as s:
        yield s


@pytest.fixture(autouse=True)
def _flush(redis_server: RedisServer) -> None:
    empty_keeping_epochs(redis_server.url)


def _check_request() -> external_auth_pb2.CheckRequest:
    request = external_auth_pb2.CheckRequest()
    http = request.attributes.request.http
    http.method = "POST"
    http.path = "/v1/chat/completions"
    http.headers.update(
        {"authorization": "Bearer kt_cg_engineering_prod", "content-type": "application/json"}
    )
    http.body = '{"model":"gpt-4o-mini","max_tokens":8,"messages":[]}'
    return request


def _forged_entry() -> als_pb2.StreamAccessLogsMessage:
    msg = als_pb2.StreamAccessLogsMessage()
    msg.identifier.log_name = "keeptrusts"
    entry = msg.http_logs.log_entry.add()
    entry.response.response_code.value = 500
    entry.common_properties.metadata.filter_metadata["envoy.filters.http.ext_authz"].update(
        {"reservation_id": "r_forged000000000000000000"}
    )
    return msg


def _credentials(stack: Stack, client: tuple[Path, Path] | None) -> grpc.ChannelCredentials:
    assert stack.pki is not None
    ca = stack.pki.ca_file.read_bytes()
    if client is None:
        return grpc.ssl_channel_credentials(root_certificates=ca)
    cert, key = client
    return grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key.read_bytes(), certificate_chain=cert.read_bytes()
    )


def _channel(stack: Stack, how: str, tmp_path: Path) -> grpc.Channel:
    target = f"127.0.0.1:{stack.cfg.server.grpc_port}"
    assert stack.pki is not None
    # The certificate names keeptrusts-authz; connect by IP and check that name.
    options = [("grpc.ssl_target_name_override", stack.pki.server_name)]
    if how == "plaintext":
        return grpc.insecure_channel(target)
    if how == "no_client_cert":
        return grpc.secure_channel(target, _credentials(stack, None), options)
    if how == "other_ca_cert":
        other = Authority("another CA").issue(tmp_path, "intruder", "intruder", [], server=False)
        return grpc.secure_channel(
            target, _credentials(stack, (other.cert_file, other.key_file)), options
        )
    if how == "same_ca_wrong_name":
        # Signed by the right CA for client auth, but not the gateway's name (say, a cert
        # issued for another workload): the handshake succeeds, the identity check refuses.
        ca = Authority.load(stack.pki.ca_file, stack.pki.ca_key_file)
        other = ca.issue(tmp_path, "workload", "some-workload", ["some-workload"], server=False)
        return grpc.secure_channel(
            target, _credentials(stack, (other.cert_file, other.key_file)), options
        )
    if how == "server_cert":
        # The service's own certificate (same CA), presented as a client.
        pki = stack.pki
        return grpc.secure_channel(
            target, _credentials(stack, (pki.server.cert_file, pki.server.key_file)), options
        )
    assert how == "gateway_cert"
    pki = stack.pki
    return grpc.secure_channel(
        target, _credentials(stack, (pki.client.cert_file, pki.client.key_file)), options
    )


def _call(channel: grpc.Channel, rpc: str) -> object:
    if rpc == "check":
        return external_auth_pb2_grpc.AuthorizationStub(channel).Check(_check_request(), timeout=3)
    if rpc == "access_log":
        return list(
            als_pb2_grpc.AccessLogServiceStub(channel).StreamAccessLogs(
                iter([_forged_entry()]), timeout=3
            )
        )
    assert rpc == "wallet_api"
    return wallet_pb2_grpc.WalletServiceStub(channel).ListWallets(  # type: ignore[no-untyped-call]
        wallet_pb2.ListWalletsRequest(), timeout=3
    )


RPCS = ["check", "access_log", "wallet_api"]


@pytest.mark.parametrize("rpc", RPCS)
@pytest.mark.parametrize("how", ["plaintext", "no_client_cert", "other_ca_cert"])
def test_direct_grpc_without_the_gateway_certificate_gets_no_answer(
    stack: Stack, rpc: str, how: str, tmp_path: Path
) -> None:
    stack.fund("team_engineering", 5 * USD)
    before = stack.wallet("team:team_engineering")
    with _channel(stack, how, tmp_path) as channel, pytest.raises(grpc.RpcError) as err:
        _call(channel, rpc)
    # No handshake, so no handler ran: UNAVAILABLE, never an answer from a servicer.
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value
    assert stack.wallet("team:team_engineering") == before


@pytest.mark.parametrize("rpc", [*RPCS, "health"])
@pytest.mark.parametrize("how", ["same_ca_wrong_name", "server_cert"])
def test_a_certificate_of_the_right_ca_with_another_name_gets_no_answer(
    stack: Stack, rpc: str, how: str, tmp_path: Path
) -> None:
    """Review #14: the CA signing a certificate is not enough; the client must be one of
    `server.tls.allowed_client_names` (default: the gateway's, keeptrusts-gateway). A cert of
    the same CA naming something else, or the service's own server cert, is refused before
    any servicer runs: PERMISSION_DENIED when the handshake completes (the identity check),
    UNAVAILABLE when the TLS library already refuses the certificate's key usage."""
    stack.fund("team_engineering", 5 * USD)
    before = stack.wallet("team:team_engineering")
    with _channel(stack, how, tmp_path) as channel, pytest.raises(grpc.RpcError) as err:
        if rpc == "health":
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
        else:
            _call(channel, rpc)
    expected = {grpc.StatusCode.PERMISSION_DENIED}
    if how == "server_cert":
        expected.add(grpc.StatusCode.UNAVAILABLE)
    assert err.value.code() in expected, err.value
    assert stack.wallet("team:team_engineering") == before


def test_the_gateway_certificate_is_answered(stack: Stack, tmp_path: Path) -> None:
    """The control: the same calls with Envoy's client certificate reach the servicers (so the
    refusals above come from the handshake, not from a broken channel in the test)."""
    stack.fund("team_engineering", 5 * USD)
    with _channel(stack, "gateway_cert", tmp_path) as channel:
        answer = _call(channel, "check")
        assert isinstance(answer, external_auth_pb2.CheckResponse)
        assert answer.HasField("ok_response")
        with pytest.raises(grpc.RpcError) as err:  # reached the wallet API: asks for a token
            _call(channel, "wallet_api")
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_health_port_answers_health_and_nothing_else(stack: Stack) -> None:
    """server.health_port (kubelet gRPC probes cannot present a client certificate): plaintext,
    grpc.health.v1 only; a Check or an access-log stream there finds no such service."""
    assert stack.cfg.server.health_port is not None
    with grpc.insecure_channel(f"127.0.0.1:{stack.cfg.server.health_port}") as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=3
        )
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        for rpc in RPCS:
            with pytest.raises(grpc.RpcError) as err:
                _call(channel, rpc)
            assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED, rpc


def test_full_path_through_envoy_with_mtls_settles_exactly(
    stack: Stack, provider: FakeProvider
) -> None:
    stack.fund("team_engineering", 5 * USD)
    status, _, raw = stack.post("/v1/chat/completions", CHAT, headers={"x-fake-usage": "120,30,0"})
    assert status == 200, raw
    wallet = stack.wait_settled("team:team_engineering")
    cost = PriceTable.from_config(stack.cfg).cost_micros("gpt-4o-mini", 120, 30, 0)
    assert cost > 0
    assert (wallet.reserved, wallet.spent_total, wallet.balance) == (0, cost, 5 * USD - cost)
    # Envoy's health checks pass over the same TLS (the cluster is healthy).
    stats = stack.envoy.stats("cluster.keeptrusts_authz.")
    assert stats.get("cluster.keeptrusts_authz.health_check.success", 0) >= 1
    assert stats.get("cluster.keeptrusts_authz.ssl.handshake", 0) >= 1


def test_uds_mode_works_through_envoy_and_opens_no_tcp_port(
    redis_server: RedisServer, provider: FakeProvider
) -> None:
    cfg = stack_config(redis_server.url, provider.url)
    with Stack(cfg, transport="uds") as stack:
        assert stack.cfg.server.uds_path is not None
        assert Path(stack.cfg.server.uds_path).is_socket()
        # Owner and group only: nobody else who can see the volume may connect.
        assert Path(stack.cfg.server.uds_path).stat().st_mode & 0o777 == 0o660
        stack.fund("team_engineering", 5 * USD)
        status, _, raw = stack.post(
            "/v1/chat/completions", CHAT, headers={"x-fake-usage": "120,30,0"}
        )
        assert status == 200, raw
        wallet = stack.wait_settled("team:team_engineering")
        cost = PriceTable.from_config(stack.cfg).cost_micros("gpt-4o-mini", 120, 30, 0)
        assert (wallet.reserved, wallet.spent_total) == (0, cost)
        # Nothing listens on the configured gRPC TCP port.
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", stack.cfg.server.grpc_port), timeout=2).close()


def test_generated_pki_names_the_server(tmp_path: Path) -> None:
    pki = generate(tmp_path / "tls", server_name="authz.example")
    assert pki.server_name == "authz.example"
    assert (pki.server.key_file.stat().st_mode & 0o077) == 0
    assert (pki.client.key_file.stat().st_mode & 0o077) == 0
