"""The network policies admit exactly the flows keeptrusts needs (evaluated, not grepped)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tests.deploy.conftest import OVERLAYS, find
from tests.deploy.netpol import Endpoint, allowed, external, pod

Obj = dict[str, Any]
PROMETHEUS = pod("monitoring", {"app.kubernetes.io/name": "prometheus"})
KUBE_DNS = pod("kube-system", {"k8s-app": "kube-dns"})
STRANGER = pod("default", {"app": "curious"})
OPENAI = external("162.159.140.245")  # a public address (api.openai.com resolves to such)


def _pods(objs: list[Obj], ns: str) -> dict[str, Endpoint]:
    out = {}
    for o in objs:
        if o["kind"] in ("Deployment", "StatefulSet"):
            template = o["spec"]["template"]
            ports = {
                p["name"]: p["containerPort"]
                for c in template["spec"]["containers"]
                for p in c.get("ports", [])
                if "name" in p
            }
            out[o["metadata"]["name"]] = pod(ns, template["metadata"]["labels"], ports)
    return out


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest, rendered: dict[str, list[Obj]]) -> dict[str, Any]:
    objs = rendered[request.param]
    ns = next(o["metadata"]["name"] for o in objs if o["kind"] == "Namespace")
    policies = [o for o in objs if o["kind"] == "NetworkPolicy"]
    return {"name": request.param, "ns": ns, "policies": policies, "pods": _pods(objs, ns)}


def test_default_deny(overlay: dict[str, Any]) -> None:
    deny = [
        p
        for p in overlay["policies"]
        if p["spec"]["podSelector"] == {}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert deny, "no default-deny policy"
    # Every keeptrusts pod is selected by some policy in both directions.
    pods = overlay["pods"]
    policies = overlay["policies"]
    gateway, authz = pods["keeptrusts-gateway"], pods["keeptrusts-authz"]
    assert not allowed(policies, STRANGER, authz, 9191)
    assert not allowed(policies, STRANGER, authz, 9464)
    assert not allowed(policies, STRANGER, gateway, 9901)
    assert not allowed(policies, authz, OPENAI, 443), "authz has no business on the internet"
    assert not allowed(policies, gateway, OPENAI, 80)
    assert not allowed(policies, gateway, STRANGER, 8080)
    assert not allowed(policies, authz, gateway, 10000)


def test_clients_reach_envoy_only(overlay: dict[str, Any]) -> None:
    p, pods = overlay["policies"], overlay["pods"]
    assert allowed(p, STRANGER, pods["keeptrusts-gateway"], 10000)
    assert allowed(p, external("203.0.113.7"), pods["keeptrusts-gateway"], 10000)


def test_envoy_reaches_authz_and_providers(overlay: dict[str, Any]) -> None:
    p, pods = overlay["policies"], overlay["pods"]
    gateway, authz = pods["keeptrusts-gateway"], pods["keeptrusts-authz"]
    assert allowed(p, gateway, authz, 9191)
    assert allowed(p, gateway, OPENAI, 443)
    assert allowed(p, gateway, external("2606:4700::6810:1"), 443)
    # Never the cloud metadata server or private ranges.
    assert not allowed(p, gateway, external("169.254.169.254"), 443)
    assert not allowed(p, gateway, external("10.1.2.3"), 443)


def test_sidecar_envoys_reach_authz_only_from_opted_in_namespaces(
    overlay: dict[str, Any],
) -> None:
    """The authz-client label alone used to be admitted from any namespace (and the sidecar's app
    pod carries it). Now only from namespaces labelled keeptrusts.io/authz-clients=true; inside
    such a pod, the client certificate (envoy container only) is what the port answers."""
    p, authz = overlay["policies"], overlay["pods"]["keeptrusts-authz"]
    labels = {"app.kubernetes.io/name": "my-app", "keeptrusts.io/authz-client": "true"}
    sidecar_app = replace(
        pod("my-app", labels),
        namespace_labels={
            "kubernetes.io/metadata.name": "my-app",
            "keeptrusts.io/authz-clients": "true",
        },
    )
    assert allowed(p, sidecar_app, authz, 9191)
    assert not allowed(p, sidecar_app, authz, 9464)
    assert not allowed(p, sidecar_app, authz, 9192)
    # The same label in a namespace nobody opted in: refused.
    assert not allowed(p, pod("elsewhere", labels), authz, 9191)
    # Nobody but the kubelet (not subject to NetworkPolicy) reaches the health-only port.
    assert not allowed(p, overlay["pods"]["keeptrusts-gateway"], authz, 9192)
    assert not allowed(p, PROMETHEUS, authz, 9192)


def test_prometheus_scrapes_authz_and_envoy_admin(overlay: dict[str, Any]) -> None:
    p, pods = overlay["policies"], overlay["pods"]
    assert allowed(p, PROMETHEUS, pods["keeptrusts-authz"], 9464)
    assert allowed(p, PROMETHEUS, pods["keeptrusts-gateway"], 9901)
    assert not allowed(p, pod("monitoring", {"app": "other"}), pods["keeptrusts-gateway"], 9901)


def test_every_pod_resolves_dns(overlay: dict[str, Any]) -> None:
    p = overlay["policies"]
    for name, endpoint in overlay["pods"].items():
        for proto in ("UDP", "TCP"):
            assert allowed(p, endpoint, KUBE_DNS, 53, proto), f"{name} cannot resolve ({proto})"


def test_authz_reaches_redis(overlay: dict[str, Any], rendered: dict[str, list[Obj]]) -> None:
    p, pods = overlay["policies"], overlay["pods"]
    authz = pods["keeptrusts-authz"]
    if overlay["name"] == "overlays/dev":
        redis = pods["keeptrusts-redis"]
        assert allowed(p, authz, redis, 6379)
        assert not allowed(p, pods["keeptrusts-gateway"], redis, 6379)
        assert not allowed(p, STRANGER, redis, 6379)
        find(rendered[overlay["name"]], "NetworkPolicy", "keeptrusts-redis")
    else:
        managed = external("10.20.30.40")
        assert allowed(p, authz, managed, 6379)
        assert allowed(p, authz, managed, 6380)
        assert not allowed(p, pods["keeptrusts-gateway"], managed, 6379)
