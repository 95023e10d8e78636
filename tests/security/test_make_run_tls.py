"""Done-when of issue 9 item 2: on a stack brought up as `make run` does
(`keeptrusts_authz.devrun`), no direct gRPC call without the proxy's client certificate gets an
answer, while requests through Envoy are served. (Free loopback ports and this session's Redis,
in a scratch working directory, so the README's fixed ports stay free.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc

from testing.redis_server import RedisServer
from testing.stack import stack_config
from tests.fake_provider import FakeProvider

pytestmark = pytest.mark.envoy

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def make_run(redis_server: RedisServer, tmp_path: Path) -> Iterator[tuple[dict[str, object], Path]]:
    with FakeProvider() as fake:
        cfg = stack_config(redis_server.url, fake.url)
        cfg["server"]["grpc_port"] = cfg["gateway"]["authz_port"]
        (tmp_path / "keeptrusts.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "KT_TEST_OPENAI_KEY": "sk-test-openai-secret",
            "REDIS_URL": redis_server.url,
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "keeptrusts_authz.devrun", "--config", "keeptrusts.yaml"],
            cwd=tmp_path,
            env=env,
            stdout=(tmp_path / "devrun.out").open("wb"),
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while b"Ctrl-C stops everything" not in (tmp_path / "devrun.out").read_bytes():
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail((tmp_path / "devrun.out").read_text())
                time.sleep(0.2)
            yield cfg, tmp_path
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _check(channel: grpc.Channel) -> external_auth_pb2.CheckResponse:
    request = external_auth_pb2.CheckRequest()
    http = request.attributes.request.http
    http.method, http.path = "POST", "/v1/chat/completions"
    http.headers["authorization"] = "Bearer kt_cg_engineering_prod"
    http.body = '{"model":"gpt-4o-mini","max_tokens":8,"messages":[]}'
    stub = external_auth_pb2_grpc.AuthorizationStub(channel)
    answer: external_auth_pb2.CheckResponse = stub.Check(request, timeout=3)
    return answer


def test_make_run_serves_grpc_only_to_envoy(make_run: tuple[dict[str, object], Path]) -> None:
    cfg, cwd = make_run
    gateway = cfg["gateway"]
    assert isinstance(gateway, dict)
    target = f"127.0.0.1:{gateway['authz_port']}"
    tls = cwd / ".run" / "tls"
    assert (tls / "ca.crt").exists()
    ca = (tls / "ca.crt").read_bytes()
    options = [("grpc.ssl_target_name_override", "keeptrusts-authz")]
    for channel in (
        grpc.insecure_channel(target),
        grpc.secure_channel(target, grpc.ssl_channel_credentials(ca), options),
    ):
        with channel, pytest.raises(grpc.RpcError) as err:
            _check(channel)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    # Through Envoy (its client certificate): served. A 401 for a missing key proves the Check
    # answered over mTLS (an unreachable service would be Envoy's 503).
    req = urllib.request.Request(
        f"http://127.0.0.1:{gateway['listen_port']}/v1/chat/completions",
        data=json.dumps({"model": "gpt-4o-mini", "messages": []}).encode(),
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as http_err:
        urllib.request.urlopen(req, timeout=10)
    assert http_err.value.code == 401
    assert json.loads(http_err.value.read())["error"]["type"] == "invalid_api_key"
    # The generated keys are readable by their owner only.
    assert ((tls / "authz-server.key").stat().st_mode & 0o077) == 0
