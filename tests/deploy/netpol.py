"""A NetworkPolicy evaluator (networking.k8s.io/v1 semantics) for the flow tests.

A connection is allowed when the source pod's egress allows it (no policy selecting the source
with Egress in policyTypes = allow all) AND the destination's ingress allows it (likewise).
Named ports are resolved against the destination's container ports.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]


@dataclass(frozen=True)
class Endpoint:
    """A pod (namespace + labels + named ports), or an address outside the cluster (ip)."""

    namespace: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    namespace_labels: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    ip: str | None = None

    @property
    def is_pod(self) -> bool:
        return self.ip is None


def pod(namespace: str, labels: dict[str, str], ports: dict[str, int] | None = None) -> Endpoint:
    return Endpoint(
        namespace=namespace,
        labels=labels,
        namespace_labels={"kubernetes.io/metadata.name": namespace},
        ports=ports or {},
    )


def external(ip: str) -> Endpoint:
    return Endpoint(ip=ip)


def selector_matches(selector: Obj | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return False
    extra = set(selector) - {"matchLabels", "matchExpressions"}
    assert not extra, f"unsupported selector fields {extra}"
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        present = key in labels
        ok = {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[op]
        if not ok:
            return False
    return True


def _peer_matches(peer: Obj, other: Endpoint, policy_ns: str) -> bool:
    if "ipBlock" in peer:
        if other.is_pod:
            return False  # pod IPs: the tests use private ranges only through pod selectors
        block = peer["ipBlock"]
        addr = ipaddress.ip_address(other.ip or "")
        net = ipaddress.ip_network(block["cidr"])
        if addr.version != net.version or addr not in net:
            return False
        return not any(
            addr in ipaddress.ip_network(ex)
            for ex in block.get("except", [])
            if ipaddress.ip_network(ex).version == addr.version
        )
    if not other.is_pod:
        return False
    if "namespaceSelector" in peer:
        if not selector_matches(peer["namespaceSelector"], other.namespace_labels):
            return False
    elif other.namespace != policy_ns:
        return False
    if "podSelector" in peer:
        return selector_matches(peer["podSelector"], other.labels)
    return True


def _port_matches(rule_ports: list[Obj] | None, port: int, protocol: str, dst: Endpoint) -> bool:
    if not rule_ports:
        return True
    for p in rule_ports:
        if p.get("protocol", "TCP") != protocol:
            continue
        if "port" not in p:
            return True
        want = p["port"]
        if isinstance(want, str):
            want = dst.ports.get(want, -1)
        end = p.get("endPort", want)
        if want <= port <= end:
            return True
    return False


def _applies(policy: Obj, target: Endpoint, direction: str) -> bool:
    spec = policy["spec"]
    types = spec.get("policyTypes") or (["Ingress", "Egress"] if "egress" in spec else ["Ingress"])
    return (
        target.is_pod
        and direction in types
        and policy["metadata"].get("namespace", "") == target.namespace
        and selector_matches(spec["podSelector"], target.labels)
    )


def _side_allows(
    policies: list[Obj], target: Endpoint, other: Endpoint, port: int, protocol: str, direction: str
) -> bool:
    selecting = [p for p in policies if _applies(p, target, direction)]
    if not selecting:
        return True
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    dst = target if direction == "Ingress" else other
    for policy in selecting:
        ns = policy["metadata"].get("namespace", "")
        for rule in policy["spec"].get(key) or []:
            peers = rule.get(peers_key)
            if peers and not any(_peer_matches(peer, other, ns) for peer in peers):
                continue
            if _port_matches(rule.get("ports"), port, protocol, dst):
                return True
    return False


def allowed(
    policies: list[Obj], src: Endpoint, dst: Endpoint, port: int, protocol: str = "TCP"
) -> bool:
    egress_ok = not src.is_pod or _side_allows(policies, src, dst, port, protocol, "Egress")
    ingress_ok = not dst.is_pod or _side_allows(policies, dst, src, port, protocol, "Ingress")
    return egress_ok and ingress_ok
