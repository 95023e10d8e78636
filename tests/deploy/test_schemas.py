"""Every rendered object against the Kubernetes OpenAPI schemas (offline, strict: no unknown field)
and the Prometheus Operator objects, which kubernetes-validate has no schema for, structurally."""

from __future__ import annotations

import json
import re
from typing import Any

import kubernetes_validate
import pytest

from tests.deploy.conftest import K8S_VERSION, KUSTOMIZATIONS, find

CRD_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
CERT_MANAGER_KINDS = {"Issuer", "Certificate"}
# cert-manager.io/v1 fields this repository uses (a typo or an unknown field fails).
CERTIFICATE_SPEC = {
    "secretName",
    "commonName",
    "dnsNames",
    "ipAddresses",
    "usages",
    "duration",
    "renewBefore",
    "isCA",
    "privateKey",
    "issuerRef",
}
# cert-manager's KeyUsage enum (the part a TLS leaf or CA uses).
KEY_USAGES = {
    "signing",
    "digital signature",
    "key encipherment",
    "server auth",
    "client auth",
    "cert sign",
    "crl sign",
}
DURATION = re.compile(r"^((\d+)(y|w|d|h|m|s|ms))+$")


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_objects_validate_against_pinned_kubernetes_schemas(
    name: str, rendered: dict[str, Any]
) -> None:
    checked = 0
    for obj in rendered[name]:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            assert obj["kind"] in CRD_KINDS
            continue
        if obj["apiVersion"].startswith("cert-manager.io/"):
            # No schema in kubernetes-validate: checked structurally below.
            assert obj["kind"] in CERT_MANAGER_KINDS, obj["kind"]
            continue
        ident = f"{name}: {obj['kind']}/{obj['metadata']['name']}"
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{ident}: {exc.message} at {list(exc.path)}")
        except kubernetes_validate.SchemaNotFoundError:
            pytest.fail(f"{ident}: no schema for {obj['apiVersion']} in Kubernetes {K8S_VERSION}")
        checked += 1
    assert checked or name == "monitoring"


def _only_keys(obj: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = set(obj) - allowed
    assert not extra, f"{where}: unknown fields {sorted(extra)}"


def _selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    _only_keys(selector, {"matchLabels"}, "selector")
    return all(labels.get(k) == v for k, v in selector["matchLabels"].items())


def _check_crd_metadata(obj: dict[str, Any]) -> None:
    assert obj["apiVersion"] == "monitoring.coreos.com/v1"
    _only_keys(obj, {"apiVersion", "kind", "metadata", "spec"}, obj["kind"])
    _only_keys(obj["metadata"], {"name", "namespace", "labels", "annotations"}, "metadata")
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", obj["metadata"]["name"])


def test_servicemonitor_scrapes_authz_metrics_port(rendered: dict[str, Any]) -> None:
    objs = rendered["overlays/production"]
    sm = find(objs, "ServiceMonitor", "keeptrusts-authz")
    _check_crd_metadata(sm)
    _only_keys(sm["spec"], {"selector", "endpoints", "namespaceSelector", "jobLabel"}, "spec")
    services = [
        s
        for s in objs
        if s["kind"] == "Service"
        and _selector_matches(sm["spec"]["selector"], s["metadata"]["labels"])
    ]
    assert [s["metadata"]["name"] for s in services] == ["keeptrusts-authz"]
    ports = {p["name"]: p for p in services[0]["spec"]["ports"]}
    assert sm["spec"]["endpoints"]
    for ep in sm["spec"]["endpoints"]:
        _only_keys(ep, {"port", "path", "interval", "scrapeTimeout", "scheme", "honorLabels"}, "ep")
        assert ep["path"] == "/metrics"
        assert DURATION.match(ep["interval"]) and DURATION.match(ep["scrapeTimeout"])
        assert ports[ep["port"]]["port"] == 9464


def test_podmonitor_scrapes_envoy_admin_stats(rendered: dict[str, Any]) -> None:
    objs = rendered["overlays/production"]
    pm = find(objs, "PodMonitor", "keeptrusts-gateway")
    _check_crd_metadata(pm)
    _only_keys(pm["spec"], {"selector", "podMetricsEndpoints", "namespaceSelector"}, "spec")
    gateway = find(objs, "Deployment", "keeptrusts-gateway")
    assert _selector_matches(
        pm["spec"]["selector"], gateway["spec"]["template"]["metadata"]["labels"]
    )
    ports = {
        p["name"]: p["containerPort"]
        for c in gateway["spec"]["template"]["spec"]["containers"]
        for p in c["ports"]
    }
    for ep in pm["spec"]["podMetricsEndpoints"]:
        _only_keys(ep, {"port", "path", "interval", "scrapeTimeout", "scheme"}, "endpoint")
        assert ep["path"] == "/stats/prometheus"
        assert ports[ep["port"]] == 9901
        assert DURATION.match(ep["interval"])


def test_prometheusrule_is_well_formed(rendered: dict[str, Any]) -> None:
    rules = [o for o in rendered["overlays/production"] if o["kind"] == "PrometheusRule"]
    assert len(rules) == 1
    pr = rules[0]
    _check_crd_metadata(pr)
    _only_keys(pr["spec"], {"groups"}, "spec")
    assert pr["spec"]["groups"]
    names = set()
    for group in pr["spec"]["groups"]:
        _only_keys(group, {"name", "interval", "rules", "limit", "labels"}, "group")
        assert group["name"] not in names
        names.add(group["name"])
        assert group["rules"]
        for rule in group["rules"]:
            _only_keys(
                rule,
                {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"},
                "rule",
            )
            assert ("alert" in rule) != ("record" in rule), rule
            assert isinstance(rule["expr"], str | int) and str(rule["expr"]).strip()
            if "for" in rule:
                assert DURATION.match(rule["for"])
            for mapping in ("labels", "annotations"):
                assert all(isinstance(v, str) for v in rule.get(mapping, {}).values())


def test_grafana_dashboards_configmap(rendered: dict[str, Any]) -> None:
    cm = find(rendered["overlays/production"], "ConfigMap", "keeptrusts-grafana-dashboards")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["data"]
    for key, text in cm["data"].items():
        assert key.endswith(".json")
        dashboard = json.loads(text)
        assert dashboard.get("title") and isinstance(dashboard.get("panels"), list)


@pytest.mark.parametrize("name", [k for k in KUSTOMIZATIONS if k.startswith("overlays/")])
def test_cert_manager_objects_are_well_formed(name: str, rendered: dict[str, Any]) -> None:
    """Issuers and Certificates (cert-manager.io/v1), structurally: known fields only, each
    Certificate names an Issuer of the same overlay, durations parse, usages are known."""
    objs = [o for o in rendered[name] if o["apiVersion"].startswith("cert-manager.io/")]
    assert {o["kind"] for o in objs} == CERT_MANAGER_KINDS
    issuers = {}
    for o in objs:
        assert o["apiVersion"] == "cert-manager.io/v1"
        _only_keys(o, {"apiVersion", "kind", "metadata", "spec"}, o["kind"])
        _only_keys(o["metadata"], {"name", "namespace", "labels", "annotations"}, "metadata")
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", o["metadata"]["name"])
        if o["kind"] == "Issuer":
            (kind,) = o["spec"]
            assert kind in ("selfSigned", "ca"), kind
            if kind == "ca":
                _only_keys(o["spec"]["ca"], {"secretName"}, "ca")
            issuers[o["metadata"]["name"]] = o
    secrets = set()
    for cert in (o for o in objs if o["kind"] == "Certificate"):
        spec = cert["spec"]
        _only_keys(spec, CERTIFICATE_SPEC, f"Certificate/{cert['metadata']['name']}")
        ref = spec["issuerRef"]
        _only_keys(ref, {"name", "kind", "group"}, "issuerRef")
        assert (ref["kind"], ref["group"]) == ("Issuer", "cert-manager.io")
        assert ref["name"] in issuers, f"no Issuer {ref['name']}"
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", spec["secretName"])
        assert spec["secretName"] not in secrets
        secrets.add(spec["secretName"])
        for field in ("duration", "renewBefore"):
            if field in spec:
                assert DURATION.match(spec[field]), (field, spec[field])
        assert set(spec.get("usages", [])) <= KEY_USAGES
        key = spec.get("privateKey", {})
        _only_keys(key, {"algorithm", "size", "encoding", "rotationPolicy"}, "privateKey")
        assert key.get("algorithm", "RSA") in ("RSA", "ECDSA", "Ed25519")
        if spec.get("isCA"):
            assert issuers[ref["name"]]["spec"].get("selfSigned") == {}
        else:
            assert "ca" in issuers[ref["name"]]["spec"], "leaf certificates come from the CA"
    # The CA Issuer signs with the CA Certificate's Secret.
    ca_secrets = {i["spec"]["ca"]["secretName"] for i in issuers.values() if "ca" in i["spec"]}
    assert ca_secrets and ca_secrets <= secrets
