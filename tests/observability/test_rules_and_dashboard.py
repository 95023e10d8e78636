"""deploy/prometheus/rules.yaml and deploy/grafana/*.json only use metrics the service exports.

`promtool check rules` / `promtool test rules` run when promtool is installed (Debian/Ubuntu:
`apt-get install prometheus`); the structural checks always run.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import keeptrusts_authz.alerts.engine
import keeptrusts_authz.alerts.webhook
import keeptrusts_authz.metrics.registry
from keeptrusts_authz.metrics.usage import UsageLabels, usage_families
from keeptrusts_authz.metrics.wallets import WalletCollector

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules.yaml"
DASHBOARDS = sorted((ROOT / "deploy" / "grafana").glob("*.json"))
assert keeptrusts_authz.alerts.engine and keeptrusts_authz.alerts.webhook

# Metrics that come from Prometheus itself, not from the service.
EXTERNAL = {"up"}
PROMQL_WORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
    "le",
}


def exported_names() -> set[str]:
    families = [f for f in REGISTRY.collect() if f.name.startswith("keeptrusts_")]
    usage = UsageLabels([], [], lambda _m: None)
    families += list(WalletCollector(lambda: None, Decimal("0.2"), usage=usage).describe())  # type: ignore[arg-type, return-value]
    names: set[str] = set()
    for fam in families:
        if fam.type == "counter":
            names.add(fam.name + "_total")
        elif fam.type == "histogram":
            names |= {fam.name + s for s in ("_bucket", "_sum", "_count")}
        else:
            names.add(fam.name)
    return names


def metric_names(expr: str) -> set[str]:
    """Metric names used by a PromQL expression (Grafana variables allowed)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    e = re.sub(r"\{[^}]*\}", "", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)  # ranges and subqueries
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\$\w+", "1", e)  # $team, $__range ...
    out = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?", e):
        name, call = m.group(1), m.group(2)
        if call or name.lower() in PROMQL_WORDS:
            continue
        out.add(name)
    return out


def test_metric_name_extraction() -> None:
    assert metric_names(
        'histogram_quantile(0.99, sum by (le) (rate(a_bucket{x="y z"}[5m]))) > 3 * 86400 and b'
    ) == {"a_bucket", "b"}
    assert metric_names('sum by (team) (rate(c_total{team=~"$team"}[$__rate_interval]))') == {
        "c_total"
    }


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    assert set(doc) == {"groups"}
    out = []
    for group in doc["groups"]:
        assert set(group) <= {"name", "rules", "interval"} and group["rules"]
        out += group["rules"]
    return out


def test_rules_shape_and_metrics() -> None:
    exported = exported_names()
    names = set()
    for rule in rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert re.match(r"^Keeptrusts[A-Za-z]+$", rule["alert"])
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]
        assert re.match(r"^\d+[smh]$", rule["for"])
        used = metric_names(rule["expr"])
        assert used, rule["alert"]
        unknown = used - exported - EXTERNAL
        assert not unknown, f"{rule['alert']} uses metrics nobody exports: {unknown}"
        names.add(rule["alert"])
    assert {
        "KeeptrustsWalletLow",
        "KeeptrustsWalletDepleted",
        "KeeptrustsWalletDepletionSoon",
        "KeeptrustsAuthzErrors",
        "KeeptrustsReconciliationLagHigh",
        "KeeptrustsOpenReservationsPilingUp",
        "KeeptrustsWalletScrapeFailing",
    } <= names


def test_dashboard_panels_use_exported_metrics() -> None:
    assert any(p.name == "keeptrusts.json" for p in DASHBOARDS)
    exported = exported_names()
    uids = set()
    for path in DASHBOARDS:
        dash = json.loads(path.read_text())
        assert dash["uid"] not in uids
        uids.add(dash["uid"])
        titles = []
        ids = set()
        for panel in dash["panels"]:
            assert panel["id"] not in ids
            ids.add(panel["id"])
            titles.append(panel["title"])
            if panel["type"] == "row":
                continue
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                used = metric_names(target["expr"])
                assert used, panel["title"]
                unknown = used - exported - EXTERNAL
                assert not unknown, f"{path.name} panel {panel['title']!r}: {unknown}"
        if path.name == "keeptrusts.json":
            text = " ".join(titles).lower()
            for needle in ("spend by team", "balances", "decisions", "latency", "reconciliation"):
                assert needle in text
        for var in dash.get("templating", {}).get("list", []):
            if var.get("type") == "query":
                query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
                metric = re.search(r"label_values\((\w+)", query)
                assert metric and metric.group(1) in exported


# Org-wide usage counters (read from Redis at scrape time: every replica reports the same value)
# -> their label names, from the families the collector exports.
ORG_WIDE_COUNTERS = {f.name + "_total": set(f._labelnames) for f in usage_families()}


def all_exprs() -> list[tuple[str, str]]:
    out = [(rule["alert"], rule["expr"]) for rule in rules()]
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                out.append((f"{path.name}: {panel['title']}", target["expr"]))
    return out


def test_org_wide_counters_are_deduplicated_with_max_not_summed() -> None:
    assert set(ORG_WIDE_COUNTERS) == {
        "keeptrusts_spend_total",
        "keeptrusts_tokens_total",
        "keeptrusts_settled_requests_total",
    }
    seen = 0
    for where, expr in all_exprs():
        for name in ORG_WIDE_COUNTERS:
            for m in re.finditer(rf"\b{name}\b", expr):
                seen += 1
                # innermost aggregation: max by (<every label of the series>) (rate|increase(...
                before = expr[: m.start()]
                agg = re.search(r"max by \(([^)]*)\) \((?:rate|increase)\($", before)
                assert agg, f"{where}: {name} must be deduplicated with max by (...) first"
                by = {x.strip() for x in agg.group(1).split(",")}
                assert by == ORG_WIDE_COUNTERS[name], f"{where}: max by {by}"
    assert seen >= 5  # the dashboard's spend and token panels


PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")
def test_promtool_check_rules() -> None:
    out = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr


LOW_DESCRIPTION = (
    "The available balance is below enforcement.low_balance_ratio of its allocation. Allocate "
    "more (`make allocate TEAM=... AMOUNT=...`) or transfer from another team."
)
SCRAPE_DESCRIPTION = (
    "keeptrusts_wallet_scrape_success is 0: Redis is unreachable or slow from this replica, so "
    "Checks fail closed (or open, per enforcement.on_store_error) and wallet gauges are missing."
)


REJECTED_DESCRIPTION = (
    "Entries naming a reservation without a valid signature of this service. unknown_key or "
    "expired after a deploy: the replicas do not share server.signing.key_file, or a rotation "
    "dropped previous_key_file too early (the sweeper then charges those reservations their "
    "estimate). missing_signature or bad_signature: something other than the gateway is "
    "writing to the access-log port."
)
BOUND_DESCRIPTION = (
    "A reservation is meant to bound its request's cost; a settle above it means a price-table "
    "gap (a model billed above its reservation price) or usage the gateway did not report "
    "itself. The service logs each with cost, estimate and model."
)


def promtool_tests() -> dict[str, Any]:
    def series(name: str, values: str, **labels: str) -> dict[str, str]:
        lv = ", ".join(f'{k}="{v}"' for k, v in labels.items())
        return {"series": f"{name}{{{lv}}}", "values": values}

    team = {"scope": "team", "wallet": "team:eng"}
    return {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    # two replicas report the same wallet: one alert, not two
                    series("keeptrusts_wallet_status", "1x40", instance="a", status="low", **team),
                    series("keeptrusts_wallet_status", "1x40", instance="b", status="low", **team),
                    series(
                        "keeptrusts_wallet_projected_depletion_seconds",
                        "86400x40",
                        instance="a",
                        **team,
                    ),
                    series(
                        "keeptrusts_wallet_projected_depletion_seconds",
                        "864000x40",
                        instance="a",
                        scope="team",
                        wallet="team:ok",
                    ),
                    series("keeptrusts_wallet_scrape_success", "0x10", instance="a"),
                    series(
                        "keeptrusts_authz_decisions_total",
                        "0+100x20",
                        decision="allow",
                        reason="ok",
                    ),
                    series(
                        "keeptrusts_authz_decisions_total",
                        "0+10x20",
                        decision="error",
                        reason="store_unavailable",
                    ),
                    # forged entries on two replicas: one alert per reason, summed
                    series(
                        "keeptrusts_accesslog_rejected_total",
                        "0x5 3x15",
                        instance="a",
                        reason="missing_signature",
                    ),
                    series(
                        "keeptrusts_accesslog_rejected_total",
                        "0x5 2x15",
                        instance="b",
                        reason="missing_signature",
                    ),
                    series("keeptrusts_settle_bound_violations_total", "0x5 1x60", instance="a"),
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "20m",
                        "alertname": "KeeptrustsWalletLow",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "warning", **team},
                                "exp_annotations": {
                                    "summary": "Wallet team:eng is low on funds.",
                                    "description": LOW_DESCRIPTION,
                                },
                            }
                        ],
                    },
                    {"eval_time": "10m", "alertname": "KeeptrustsWalletLow", "exp_alerts": []},
                    {
                        "eval_time": "35m",
                        "alertname": "KeeptrustsWalletDepletionSoon",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "warning", **team},
                                "exp_annotations": {
                                    "summary": "Wallet team:eng runs dry in 1d 0h 0m 0s at its "
                                    "7-day burn rate."
                                },
                            }
                        ],
                    },
                    {
                        "eval_time": "8m",
                        "alertname": "KeeptrustsWalletScrapeFailing",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "critical", "instance": "a"},
                                "exp_annotations": {
                                    "summary": "a cannot read wallets from Redis at scrape time.",
                                    "description": SCRAPE_DESCRIPTION,
                                },
                            }
                        ],
                    },
                    {
                        "eval_time": "15m",
                        "alertname": "KeeptrustsAuthzErrors",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "critical"},
                                "exp_annotations": {
                                    "summary": "More than 1% of ext_authz Checks end in an error "
                                    "(9.091%)."
                                },
                            }
                        ],
                    },
                    {"eval_time": "15m", "alertname": "KeeptrustsWalletDepleted", "exp_alerts": []},
                    {
                        "eval_time": "4m",
                        "alertname": "KeeptrustsAccessLogRejected",
                        "exp_alerts": [],
                    },
                    {
                        "eval_time": "8m",
                        "alertname": "KeeptrustsAccessLogRejected",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "critical",
                                    "reason": "missing_signature",
                                },
                                "exp_annotations": {
                                    "summary": "5 access-log entries refused in 10m "
                                    "(missing_signature): nothing was settled or released for "
                                    "them.",
                                    "description": REJECTED_DESCRIPTION,
                                },
                            }
                        ],
                    },
                    {
                        "eval_time": "30m",
                        "alertname": "KeeptrustsAccessLogRejected",
                        "exp_alerts": [],
                    },
                    {
                        "eval_time": "10m",
                        "alertname": "KeeptrustsSettleBoundViolations",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "warning"},
                                "exp_annotations": {
                                    "summary": "1 settlements in 1h cost more than their "
                                    "reservation (charged in full).",
                                    "description": BOUND_DESCRIPTION,
                                },
                            }
                        ],
                    },
                ],
            }
        ],
    }


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")
def test_promtool_unit_tests(tmp_path: Path) -> None:
    spec = tmp_path / "rules_test.yaml"
    spec.write_text(yaml.safe_dump(promtool_tests(), sort_keys=False))
    out = subprocess.run(
        [str(PROMTOOL), "test", "rules", str(spec)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr
