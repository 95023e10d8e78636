"""render-envoy with several authz replicas: every endpoint in the cluster, gRPC health checks and
outlier detection that move off a dead or draining replica within about a second, and (with more
than one endpoint) each access-log entry streamed to two replicas; `envoy --mode validate`
passes."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from keeptrusts_authz.config.models import Config
from keeptrusts_authz.envoy_config.render import render_envoy_yaml
from keeptrusts_authz.envoy_contract import (
    ACCESS_LOG_COPY_NAME,
    ACCESS_LOG_NAME,
    AUTHZ_ACCESS_LOG_CLUSTER,
    AUTHZ_CLUSTER,
    AUTHZ_HEALTH_SERVICE,
)
from testing.envoy_harness import envoy_validate

TWO = [{"host": "10.0.0.1", "port": 9191}, {"host": "authz-b.ns.svc", "port": 9292}]


def _cfg(**gateway: Any) -> Config:
    return Config.model_validate({"gateway": gateway})


def _doc(cfg: Config) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(render_envoy_yaml(cfg))
    return doc


def _clusters(doc: dict[str, Any]) -> dict[str, Any]:
    return {c["name"]: c for c in doc["static_resources"]["clusters"]}


def _access_logs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    hcm = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    logs: list[dict[str, Any]] = hcm["typed_config"]["access_log"]
    return logs


def _addresses(cluster: dict[str, Any]) -> list[tuple[str, int]]:
    eps = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    return [
        (e["endpoint"]["address"]["socket_address"]["address"],
         e["endpoint"]["address"]["socket_address"]["port_value"])
        for e in eps
    ]  # fmt: skip


def test_several_endpoints_health_checks_outlier_detection_and_two_access_logs() -> None:
    doc = _doc(_cfg(authz_endpoints=TWO))
    clusters = _clusters(doc)
    for name in (AUTHZ_CLUSTER, AUTHZ_ACCESS_LOG_CLUSTER):
        c = clusters[name]
        assert _addresses(c) == [("10.0.0.1", 9191), ("authz-b.ns.svc", 9292)]
        (hc,) = c["health_checks"]
        assert hc["grpc_health_check"] == {"service_name": AUTHZ_HEALTH_SERVICE}
        # out of rotation within ~1 s: threshold x interval, and never idle-checked slower
        assert hc["unhealthy_threshold"] * float(hc["interval"].rstrip("s")) <= 1.0
        assert hc["no_traffic_interval"] == hc["interval"]
        od = c["outlier_detection"]
        assert od["split_external_local_origin_errors"] is True
        assert od["consecutive_local_origin_failure"] == 1
    logs = _access_logs(doc)
    common = [log["typed_config"]["common_config"] for log in logs]
    assert [c["log_name"] for c in common] == [ACCESS_LOG_NAME, ACCESS_LOG_COPY_NAME]
    assert {c["grpc_service"]["envoy_grpc"]["cluster_name"] for c in common} == {
        AUTHZ_ACCESS_LOG_CLUSTER
    }
    envoy_validate(render_envoy_yaml(_cfg(authz_endpoints=TWO)))


def test_one_endpoint_is_backward_compatible_one_access_log() -> None:
    doc = _doc(_cfg(authz_host="authz.ns.svc", authz_port=9300))
    clusters = _clusters(doc)
    assert AUTHZ_ACCESS_LOG_CLUSTER not in clusters
    assert _addresses(clusters[AUTHZ_CLUSTER]) == [("authz.ns.svc", 9300)]
    assert "health_checks" in clusters[AUTHZ_CLUSTER]
    logs = _access_logs(doc)
    assert len(logs) == 1
    assert logs[0]["typed_config"]["common_config"]["grpc_service"]["envoy_grpc"] == {
        "cluster_name": AUTHZ_CLUSTER
    }
    # a DNS name with several addresses can still ask for the second copy explicitly
    doc = _doc(_cfg(authz_host="authz.ns.svc", access_log_to_two_replicas=True))
    assert len(_access_logs(doc)) == 2
    assert AUTHZ_ACCESS_LOG_CLUSTER in _clusters(doc)


@pytest.mark.parametrize(
    ("gateway", "fragment"),
    [
        ({"authz_endpoints": TWO, "authz_host": "x"}, "not both"),
        ({"authz_endpoints": TWO, "authz_port": 1}, "not both"),
        ({"authz_endpoints": [TWO[0], TWO[0]]}, "authz_endpoints[1]: duplicate endpoint"),
        ({"authz_endpoints": [{"host": "a", "port": 9191, "weight": 2}]}, "weight"),
        ({"authz_endpoints": [{"host": "", "port": 9191}]}, "host"),
    ],
)
def test_bad_endpoint_config_is_rejected_with_its_path(
    gateway: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ValidationError) as info:
        _cfg(**gateway)
    assert fragment in str(info.value)
