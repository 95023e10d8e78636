"""`keeptrusts-authz prices [--config FILE] [--json]`: the effective price table.

Every model the gateway prices (the shipped defaults from genai-prices, with `pricing.models`
overrides and additions from the config when one is given), with its prices per 1M tokens, its
long-context and service tiers, its limits, and where its prices come from. Exit codes: 0 ok,
1 the config or its price table is invalid.
"""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal
from typing import Any

from keeptrusts_authz.config.loader import ConfigError, find_config_path, load_config
from keeptrusts_authz.config.models import PriceSet
from keeptrusts_authz.pricing import PriceTable, PricingError, load_default_prices

_PRICES = (
    ("input_per_1m", "input"),
    ("cached_input_per_1m", "cached"),
    ("cache_write_per_1m", "write 5m"),
    ("cache_write_1h_per_1m", "write 1h"),
    ("output_per_1m", "output"),
)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "prices",
        help="list the effective price table (models, prices, tiers, sources)",
        description=(
            "List every priced model: input, cached-input, cache-write (5m, 1h) and output "
            "prices per 1M tokens, long-context and service tiers, output limits, and the "
            "source of its prices (genai-prices <version> or a config override). Without a "
            "config (FILE, --config or $KEEPTRUSTS_CONFIG) the shipped defaults are listed."
        ),
    )
    p.add_argument("file", nargs="?", metavar="FILE", help="config file")
    p.add_argument("--config", dest="config", metavar="FILE", help="config file (same as FILE)")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(func=run_prices)


def _money(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def _price_set(prices: PriceSet | Any) -> dict[str, str | None]:
    return {field: _money(getattr(prices, field)) for field, _ in _PRICES}


def table_json(table: PriceTable, currency: str) -> dict[str, Any]:
    """The table as JSON-ready data (prices as decimal strings, never floats)."""
    shipped = load_default_prices()
    models: list[dict[str, Any]] = []
    for name in sorted(table, key=str.lower):
        price = table.models[name]
        entry: dict[str, Any] = {
            "model": name,
            "aliases": list(price.aliases),
            "provider": price.provider,
            "source": table.source(name),
            **_price_set(price),
            "max_output_tokens": price.max_output_tokens,
            "beta_max_output_tokens": dict(price.beta_max_output_tokens),
            "context_window": price.context_window,
            "hidden_reasoning": price.hidden_reasoning,
            "long_context": None,
            "service_tiers": {},
        }
        if price.long_context is not None:
            entry["long_context"] = {
                "above_input_tokens": price.long_context.above_input_tokens,
                **_price_set(price.long_context),
            }
        for tier, tp in sorted(price.service_tiers.items()):
            entry["service_tiers"][tier] = {
                **_price_set(tp),
                "long_context": None
                if tp.long_context is None
                else {
                    "above_input_tokens": tp.long_context.above_input_tokens,
                    **_price_set(tp.long_context),
                },
            }
        models.append(entry)
    return {
        "currency": currency,
        "unit": "per 1M tokens",
        "genai_prices_version": table.genai_version,
        "data_date": table.prices_taken.isoformat() if table.prices_taken else None,
        "limits_taken": shipped.limits_taken.isoformat() if shipped.limits_taken else None,
        "unknown_model": table.unknown_model,
        "models": models,
    }


def _cell(value: str | None) -> str:
    return "-" if value is None else value


def render_text(data: dict[str, Any]) -> str:
    head = (
        f"prices in {data['currency']} {data['unit']}; shipped prices from genai-prices "
        f"{data['genai_prices_version'] or '(not used)'} (data dated {data['data_date'] or '-'}), "
        f"limits taken {data['limits_taken'] or '-'}"
    )
    cols = ["model", *(label for _, label in _PRICES), "max out", "tiers", "source"]
    rows: list[list[str]] = []
    for m in data["models"]:
        tiers = []
        if m["long_context"]:
            lc = m["long_context"]
            tiers.append(
                f">{lc['above_input_tokens']}: in {_cell(lc['input_per_1m'])} "
                f"out {_cell(lc['output_per_1m'])}"
            )
        for tier, tp in m["service_tiers"].items():
            tiers.append(f"{tier}: in {_cell(tp['input_per_1m'])} out {_cell(tp['output_per_1m'])}")
        rows.append(
            [
                m["model"],
                *(_cell(m[field]) for field, _ in _PRICES),
                str(m["max_output_tokens"]),
                "; ".join(tiers) or "-",
                m["source"],
            ]
        )
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)] if rows else []
    lines = [head, "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def run_prices(args: argparse.Namespace) -> int:
    given = args.file or args.config
    try:
        path = find_config_path(given)
    except ConfigError:
        if given:
            raise
        path = None
    try:
        if path is None:
            table, currency = PriceTable.defaults(), load_default_prices().currency
        else:
            cfg = load_config(str(path))
            table, currency = PriceTable.from_config(cfg), cfg.organization.currency
    except (ConfigError, PricingError) as exc:
        for e in exc.errors:
            print(f"prices: {e}", file=sys.stderr)
        return 1
    data = table_json(table, currency)
    print(json.dumps(data, indent=2) if args.json else render_text(data))
    return 0
