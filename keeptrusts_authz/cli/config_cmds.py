"""`keeptrusts-authz check-config [FILE]`: validate a config and print a secret-free summary.

Exit codes: 0 valid, 1 invalid (every error printed, one path-named line each, on stderr),
2 no config file given. Warnings (e.g. an `api_key_env` variable that is not set) do not fail
the check unless `--strict-env`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from keeptrusts_authz.config.loader import ConfigError, find_config_path, load_config
from keeptrusts_authz.config.models import Config, ConsumerGroup
from keeptrusts_authz.pricing import validate_pricing

_SECRET_QUERY_KEYS = frozenset({"password", "pass", "pwd", "token", "secret", "key"})


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "check-config",
        help="validate a keeptrusts.yaml and print a summary (or every error)",
        description=(
            "Validate the configuration: schema (unknown keys, types, duplicates), key sources, "
            "prices of every allowed and default model, and environment variables. Prints a "
            "summary without any secret on success (exit 0), every error on failure (exit 1)."
        ),
    )
    p.add_argument(
        "file",
        nargs="?",
        metavar="FILE",
        help="config file (default: --config or $KEEPTRUSTS_CONFIG)",
    )
    p.add_argument("--config", dest="config", metavar="FILE", help="config file (same as FILE)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.add_argument(
        "--strict-env",
        action="store_true",
        help="treat unset environment variables (api_key_env, credential_env) as errors",
    )
    p.set_defaults(func=run_check_config)


# -- secret-free rendering -------------------------------------------------------------------------


def mask_url(url: str) -> str:
    """The URL with any password (userinfo or secret-looking query parameter) replaced by ***."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc
    if password is not None:
        hostport = netloc.rpartition("@")[2]
        netloc = f"{parts.username or ''}:***@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SECRET_QUERY_KEYS for k, _ in pairs):
            masked = [(k, "***" if k.lower() in _SECRET_QUERY_KEYS else v) for k, v in pairs]
            query = urlencode(masked, safe="*")
    if netloc == parts.netloc and query == parts.query:
        return url  # nothing secret: keep the URL exactly as written
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def key_source(group: ConsumerGroup) -> str:
    """Where the group's API key comes from: `api_key`, `env:NAME` or `sha256`. Never the key."""
    if group.api_key_env is not None:
        return f"env:{group.api_key_env}"
    if group.api_key_sha256 is not None:
        return "sha256"
    return "api_key"


def _webhook_host(url: str | None) -> str | None:
    if not url:
        return None
    try:
        return urlsplit(url).hostname or "<unparseable URL>"
    except ValueError:
        return "<unparseable URL>"


# -- checks the model cannot do on its own ---------------------------------------------------------


def check_environment(
    cfg: Config, environ: Mapping[str, str], strict: bool
) -> tuple[list[str], list[str]]:
    """Unset `api_key_env` / `credential_env` variables (warnings, errors when strict) and keys
    duplicated once the environment is taken into account (always errors)."""
    errors: list[str] = []
    warnings: list[str] = []
    unset = errors if strict else warnings
    digests: dict[str, int] = {}
    for i, g in enumerate(cfg.consumer_groups):
        if g.api_key_env is not None and not environ.get(g.api_key_env):
            unset.append(
                f"consumer_groups[{i}].api_key_env: environment variable {g.api_key_env} is not set"
            )
            continue
        if g.api_key_env is not None:
            digest = hashlib.sha256(environ[g.api_key_env].encode()).hexdigest()
        else:
            digest = g.key_digest()
        if digest in digests:
            first = digests[digest]
            errors.append(
                f"consumer_groups[{i}]: duplicate API key (same as consumer_groups[{first}])"
            )
        else:
            digests[digest] = i
    for i, p in enumerate(cfg.providers):
        if p.credential_env is not None and not environ.get(p.credential_env):
            unset.append(
                f"providers[{i}].credential_env: environment variable {p.credential_env} is not set"
            )
    return errors, warnings


def summarize(cfg: Config, priced_models: int, prices_taken: str | None) -> dict[str, Any]:
    """A JSON-able summary of the config with no secret in it."""
    groups = [
        {
            "name": g.name,
            "team": g.wallet_team_id,
            "cascade": list(cfg.cascade_for(g)),
            "policy": cfg.policy_for(g),
            "key_source": key_source(g),
            "user_header": cfg.user_header_for(g),
            "allowed_models": list(g.allowed_models) if g.allowed_models is not None else None,
        }
        for g in cfg.consumer_groups
    ]
    return {
        "organization": {"id": cfg.organization.id, "currency": cfg.organization.currency},
        "cost_tracking": {
            "enabled": cfg.cost_tracking.enabled,
            "wallet_enforcement": cfg.cost_tracking.wallet_enforcement,
        },
        "consumer_groups": groups,
        "pricing": {
            "models": priced_models,
            "include_defaults": cfg.pricing.include_defaults,
            "defaults_taken": prices_taken,
            "config_models": len(cfg.pricing.models),
            "unknown_model": cfg.pricing.unknown_model,
            "default_model": cfg.pricing.default_model,
        },
        "providers": [
            {
                "name": p.name,
                "kind": p.kind,
                "url": mask_url(p.url),
                "credential": f"env:{p.credential_env}" if p.credential_env else None,
                "models": list(p.models),
            }
            for p in cfg.providers
        ],
        "redis": {"mode": cfg.redis.mode, "url": mask_url(cfg.redis.url)},
        "admin_tokens": [{"name": t.name, "roles": list(t.roles)} for t in cfg.admin.tokens],
        "alerts_webhook_host": _webhook_host(cfg.alerts.webhook_url),
    }


def _table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return [
        indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def render_text(source: str, summary: dict[str, Any]) -> str:
    org = summary["organization"]
    ct = summary["cost_tracking"]
    pr = summary["pricing"]
    lines = [
        f"{source}: OK",
        f"organization: {org['id']} (currency {org['currency']})",
        "cost tracking: "
        + ("enabled" if ct["enabled"] else "disabled")
        + ", wallet enforcement "
        + ("on" if ct["wallet_enforcement"] else "off (showback: nothing is denied for money)"),
    ]
    groups = summary["consumer_groups"]
    lines.append(f"consumer groups ({len(groups)}):")
    if groups:
        rows = [["NAME", "TEAM", "CASCADE", "POLICY", "KEY", "MODELS"]]
        for g in groups:
            allowed = g["allowed_models"]
            rows.append(
                [
                    g["name"],
                    g["team"] or "(org wallet)",
                    ",".join(g["cascade"]),
                    g["policy"],
                    g["key_source"],
                    "all" if allowed is None else ",".join(allowed) or "none",
                ]
            )
        lines += _table(rows)
    source_desc = (
        f"shipped defaults of {pr['defaults_taken']} + {pr['config_models']} from config"
        if pr["include_defaults"]
        else f"{pr['config_models']} from config, shipped defaults off"
    )
    unknown = pr["unknown_model"]
    if unknown == "default":
        unknown = f"priced as {pr['default_model']}"
    lines.append(
        f"pricing: {pr['models']} models priced ({source_desc}); unknown models: {unknown}"
    )
    providers = summary["providers"]
    lines.append(f"providers ({len(providers)}):")
    if providers:
        rows = [["NAME", "KIND", "URL", "CREDENTIAL", "MODELS"]]
        for p in providers:
            rows.append(
                [p["name"], p["kind"], p["url"], p["credential"] or "-", ",".join(p["models"])]
            )
        lines += _table(rows)
    lines.append(f"redis: {summary['redis']['mode']} {summary['redis']['url']}")
    tokens = summary["admin_tokens"]
    lines.append(
        f"admin tokens ({len(tokens)}): "
        + (", ".join(f"{t['name']} [{','.join(t['roles'])}]" for t in tokens) or "none")
    )
    if summary["alerts_webhook_host"]:
        lines.append(f"alerts: webhook to {summary['alerts_webhook_host']}")
    return "\n".join(lines)


def check_transport(cfg: Config) -> list[str]:
    """Both ends of the proxy-to-service hop in one file must agree: with `server.tls` set and no
    `gateway.authz_tls`, render-envoy (and make run, deploy.render) would point a plaintext
    cluster at the TLS port, and every Check would fail. An error, not a warning: a service-only
    file for a split deployment (Envoy configured from another file) can carry the gateway's
    `authz_tls` block too; `serve` ignores it. The reverse (authz_tls without server.tls) is a
    gateway-only file, e.g. the sidecar example, and is fine."""
    if cfg.server.tls is not None and cfg.gateway.authz_tls is None:
        return [
            "gateway.authz_tls: not set, but server.tls requires client certificates: Envoy "
            "rendered from this file would talk plaintext to the TLS port (set gateway.authz_tls "
            "to Envoy's client certificate, the CA and server_name)"
        ]
    return []


# -- the command -----------------------------------------------------------------------------------


def run_check_config(args: argparse.Namespace) -> int:
    try:
        path = str(find_config_path(args.file or args.config))
    except ConfigError as exc:
        print(f"check-config: {exc.errors[0]}", file=sys.stderr)
        return 2
    errors: list[str] = []
    warnings: list[str] = []
    summary: dict[str, Any] | None = None
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        errors = list(exc.errors)
    else:
        report = validate_pricing(cfg)
        errors += report.errors
        warnings += report.warnings
        env_errors, env_warnings = check_environment(cfg, os.environ, args.strict_env)
        errors += env_errors
        warnings += env_warnings
        warnings += cfg.timing_warnings()
        errors += check_transport(cfg)
        if not errors:
            assert report.table is not None
            taken = report.table.prices_taken
            summary = summarize(cfg, len(report.table), taken.isoformat() if taken else None)
    ok = not errors
    if args.json:
        out: dict[str, Any] = {"source": str(path), "ok": ok, "errors": errors}
        out["warnings"] = warnings
        if summary is not None:
            out["summary"] = summary
        print(json.dumps(out, indent=2))
        return 0 if ok else 1
    if summary is not None:
        print(render_text(str(path), summary))
    for w in warnings:
        print(f"{path}: warning: {w}", file=sys.stderr)
    if not ok:
        for e in errors:
            print(f"{path}: {e}", file=sys.stderr)
        plural = "s" if len(errors) != 1 else ""
        print(f"{path}: invalid ({len(errors)} error{plural})", file=sys.stderr)
        return 1
    return 0
