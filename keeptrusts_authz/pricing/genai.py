"""Shipped default prices from pydantic's `genai-prices` package (pinned in pyproject.toml).

Only the data bundled in the installed wheel is read (`genai_prices.data.providers`): never
`genai_prices.calc_price`/`get_snapshot` (which can return a snapshot `UpdatePrices` fetched) and
never `UpdatePrices` itself, so the table never changes at run time and no network call is made.
Upgrading the pin is how prices change (`keeptrusts-authz prices` shows the version in use).

Conversion to the table's `ModelPrice` (USD per 1M tokens, exact Decimals):
  input_mtok -> input_per_1m, output_mtok -> output_per_1m, cache_read_mtok ->
  cached_input_per_1m, cache_write_mtok -> cache_write_per_1m (Anthropic's 5-minute write),
  cache_write_1h_mtok -> cache_write_1h_per_1m;
  a `TieredPrices` with one tier -> the base price and `long_context` (`above_input_tokens` =
  the tier's start; genai-prices and the providers apply it to every token of a prompt above it);
  `price_variants` keyed on `service_tier` -> `service_tiers[<name>]` (the `default` variant is
  the standard price); date-conditional prices -> the ones in force on the day the table is built.
Prices for other units (web searches, audio, images) are not carried: the gateway does not meter
them (see `unbounded_inputs` for requests that use server-side tools).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from importlib.metadata import version
from typing import Any

from keeptrusts_authz.config.models import LongContextPrice, PriceSet, ServiceTierPrice

# genai-prices price key -> our field
_FIELDS = {
    "input_mtok": "input_per_1m",
    "output_mtok": "output_per_1m",
    "cache_read_mtok": "cached_input_per_1m",
    "cache_write_mtok": "cache_write_per_1m",
    "cache_write_1h_mtok": "cache_write_1h_per_1m",
}
PACKAGE = "genai-prices"


class GenaiPricesError(RuntimeError):
    """The bundled data cannot price a shipped model the way the table needs (a packaging bug:
    a test pins it)."""


@dataclass(frozen=True)
class GenaiModel:
    """One model's prices as the table holds them, and where in the data they came from."""

    provider: str
    model_id: str
    names: tuple[str, ...]  # the exact names (ClauseEquals) the data lists for it
    context_window: int | None
    prices: dict[str, Any]  # ModelPrice fields: prices, long_context, service_tiers


def genai_version() -> str:
    return version(PACKAGE)


@lru_cache(maxsize=1)
def _providers() -> tuple[Any, ...]:
    # The bundled data module itself, not the (replaceable) snapshot.
    from genai_prices.data import providers

    return tuple(providers)


def data_date(today: date | None = None) -> date:
    """The newest dated price change in the bundled data that is in force `today`: how current
    the prices the table uses are (changes the data schedules for later are not applied until
    the table is built on or after their date)."""
    limit = today or datetime.now(tz=UTC).date()
    newest = date.min
    for provider in _providers():
        for model in provider.models:
            prices = model.prices if isinstance(model.prices, list) else []
            constraints = [c.constraint for c in prices] + [
                v.constraint for v in (model.price_variants or [])
            ]
            for c in constraints:
                start = getattr(c, "start_date", None)
                if isinstance(start, datetime):
                    start = start.date()
                if isinstance(start, date) and newest < start <= limit:
                    newest = start
    return newest


def _find(provider_id: str, ref: str) -> Any:
    for provider in _providers():
        if provider.id == provider_id:
            for model in provider.models:
                if model.is_match(ref.lower()):
                    return model
            raise GenaiPricesError(f"{PACKAGE}: no {provider_id} model matches {ref!r}")
    raise GenaiPricesError(f"{PACKAGE}: no provider {provider_id!r}")


def _embedding_kind(model_id: str) -> bool:
    """An embedding model (text-embedding-*, gemini-embedding-*, embed-*): no output tokens."""
    return "embed" in model_id.lower()


def _equals_names(match: Any) -> list[str]:
    equals = getattr(match, "equals", None)
    if isinstance(equals, str):
        return [equals]
    names: list[str] = []
    for clause in getattr(match, "or_", None) or []:
        names.extend(_equals_names(clause))
    return names


def _split(key: str, value: Any, flat: dict[str, Decimal], long: dict[str, Any]) -> None:
    """Put one genai-prices price into flat (base) and long (long-context) parts."""
    field = _FIELDS[key]
    if isinstance(value, Decimal):
        flat[field] = value
        return
    tiers = getattr(value, "tiers", None)
    if tiers is None or len(tiers) != 1:
        raise GenaiPricesError(f"{key}: expected a Decimal or one price tier, got {value!r}")
    flat[field] = value.base
    start = int(tiers[0].start)
    if long.setdefault("above_input_tokens", start) != start:
        raise GenaiPricesError(f"{key}: tiers start at different token counts")
    long[field] = tiers[0].price


def _price_dict(prices: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(prices).items() if k in _FIELDS and v is not None}


def model_prices(provider_id: str, ref: str, at: datetime | None = None) -> GenaiModel:
    """The prices of the model `ref` names at time `at` (default now), converted."""
    when = at or datetime.now(tz=UTC)
    model = _find(provider_id, ref)
    standard = model.get_prices(when)  # date-conditional prices, no request context
    flat: dict[str, Decimal] = {}
    long: dict[str, Any] = {}
    for key, value in _price_dict(standard).items():
        _split(key, value, flat, long)
    if "input_per_1m" not in flat:
        raise GenaiPricesError(f"{PACKAGE}: {model.id} has no input price")
    if "output_per_1m" not in flat:
        # Only an embedding model has no output to bill; any other model missing its output
        # price would be billed 0 for output, so the table refuses to load (review #10).
        if not _embedding_kind(model.id):
            raise GenaiPricesError(f"{PACKAGE}: {model.id} has no output price")
        flat["output_per_1m"] = Decimal(0)
    out: dict[str, Any] = dict(flat)
    if long:
        out["long_context"] = LongContextPrice(**long)
    tiers: dict[str, ServiceTierPrice] = {}
    for variant in model.price_variants or []:
        tier = variant.when.get("service_tier")
        if tier is None or set(variant.when) != {"service_tier"}:
            continue  # batch, routes, search types: not what this gateway meters
        if variant.constraint is not None and not variant.constraint.active(when):
            continue
        vflat: dict[str, Decimal] = {}
        vlong: dict[str, Any] = {}
        for key, value in _price_dict(variant.prices).items():
            _split(key, value, vflat, vlong)
            if isinstance(value, Decimal) and _FIELDS[key] in long:
                # A flat tier price replaces the whole tiered one, long context included.
                vlong[_FIELDS[key]] = value
        if not vflat and not vlong:
            continue  # the `default` tier: the standard prices
        if vlong:
            vlong.setdefault("above_input_tokens", long.get("above_input_tokens"))
        tiers[tier] = ServiceTierPrice(
            **vflat, long_context=LongContextPrice(**vlong) if vlong else None
        )
    if tiers:
        out["service_tiers"] = tiers
    return GenaiModel(
        provider_id,
        model.id,
        tuple(_equals_names(model.match)),
        model.context_window,
        out,
    )


def matches_same(provider_id: str, ref: str, other: str) -> bool:
    """Whether the data prices `other` as the same model as `ref`."""
    try:
        return _find(provider_id, other) is _find(provider_id, ref)
    except GenaiPricesError:
        return False


__all__ = [
    "PACKAGE",
    "GenaiModel",
    "GenaiPricesError",
    "PriceSet",
    "data_date",
    "genai_version",
    "matches_same",
    "model_prices",
]
