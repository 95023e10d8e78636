"""The rendered wallet-API Envoy pieces: routes cover every google.api.http rule, the descriptor is
embedded (self-contained YAML), ext_authz is off on them and its timeout covers a hold."""

from __future__ import annotations

import base64
import re
from typing import Any

import yaml
from google.api import annotations_pb2, http_pb2

from keeptrusts_authz.api.gen.keeptrusts.wallet.v1 import wallet_pb2
from keeptrusts_authz.config.loader import parse_config
from keeptrusts_authz.envoy_config import admin_routes
from keeptrusts_authz.envoy_config.render import render_envoy_yaml
from testing.envoy_harness import envoy_validate, loopback_gateway


def _cfg(**enforcement: Any) -> Any:
    return parse_config(
        {
            "consumer_groups": [
                {"name": "r", "api_key": "kt_cg_r", "wallet_team_id": "team_r", **enforcement}
            ],
            "enforcement": {"hold_timeout_seconds": 30},
            "gateway": loopback_gateway(),
        }
    )


def _rules() -> set[tuple[str, str]]:
    out = set()
    for method in wallet_pb2.DESCRIPTOR.services_by_name["WalletService"].methods:
        top: http_pb2.HttpRule = method.GetOptions().Extensions[annotations_pb2.http]
        for rule in (top, *top.additional_bindings):
            verb = rule.WhichOneof("pattern")
            assert verb is not None
            out.add((verb.upper(), getattr(rule, verb)))
    return out


def test_every_http_rule_has_a_route() -> None:
    rules = _rules()
    assert len(rules) == 20
    for verb, template in rules:
        concrete = re.sub(r"\{[a-z_]+\}", "x_1", template)
        hits = [
            m for m in admin_routes.REST_METHODS
            if m[0] == verb and (m[1] == concrete or (m[2] and re.match(m[2], concrete)))
        ]  # fmt: skip
        assert len(hits) == 1, (verb, template)


def _hcm(text: str) -> dict[str, Any]:
    doc = yaml.safe_load(text)
    hcm: dict[str, Any] = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"
    ]
    return hcm


def test_rendered_config_embeds_descriptor_and_disables_ext_authz() -> None:
    text = render_envoy_yaml(_cfg(on_insufficient="hold"))
    hcm = _hcm(text)
    filters = {f["name"]: f["typed_config"] for f in hcm["http_filters"]}
    tc = filters["envoy.filters.http.grpc_json_transcoder"]
    assert base64.b64decode(tc["proto_descriptor_bin"]) == admin_routes.descriptor_set()
    assert "proto_descriptor" not in tc  # no file path: the YAML is self-contained
    assert tc["match_incoming_request_route"] is True and tc["convert_grpc_status"] is True
    names = [f["name"] for f in hcm["http_filters"]]
    assert names.index("envoy.filters.http.header_mutation") < names.index(
        "envoy.filters.http.grpc_json_transcoder"
    )
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    api_routes = [r for r in routes if r["name"].startswith("wallet_api_")]
    assert api_routes
    for route in api_routes:
        per = route["typed_per_filter_config"]
        assert per["envoy.filters.http.ext_authz"]["disabled"] is True
    # a hold group: the Check may wait hold_timeout, so ext_authz's timeout exceeds it
    timeout = filters["envoy.filters.http.ext_authz"]["grpc_service"]["timeout"]
    assert float(timeout.rstrip("s")) > 30
    envoy_validate(text)


def test_block_only_config_keeps_the_short_check_timeout() -> None:
    filters = {
        f["name"]: f["typed_config"] for f in _hcm(render_envoy_yaml(_cfg()))["http_filters"]
    }
    timeout = filters["envoy.filters.http.ext_authz"]["grpc_service"]["timeout"]
    assert float(timeout.rstrip("s")) < 30
