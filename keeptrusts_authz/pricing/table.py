"""The price table: shipped defaults (genai-prices + prices.yaml) merged with `pricing.models`.

Shipped defaults: the models `prices.yaml` lists, with their limits from there and every price
from the pinned, bundled `genai-prices` data (`pricing/genai.py`; never fetched at run time).

Name resolution (`PriceTable.resolve`), case-insensitive, no prefix or suffix guessing:
  1. the exact model name;
  2. an alias listed by a model (for shipped models: the exact names genai-prices lists for it,
     e.g. `gpt-4o-2024-08-06` for `gpt-4o`, and the dated snapshots prices.yaml lists);
  3. otherwise `UnknownModel`, unless `pricing.unknown_model: default`, which prices the request as
     `pricing.default_model` (the result says `defaulted`).
A dated snapshot is never priced by stripping its date: `gpt-4o-2024-05-13` is its own model
(its list price is higher than `gpt-4o`'s).

Costs: `cost_micros(model, usage, service_tier)` bills the tier the provider reported and the
long-context rates when the prompt is above the model's threshold; `worst_case_micros(model,
input, output, service_tier)` is the most any tier the request can reach can cost.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from importlib import resources
from types import MappingProxyType
from typing import Literal, overload

import yaml
from pydantic import ValidationError

from keeptrusts_authz.config.loader import ConfigError
from keeptrusts_authz.config.models import Config, ModelPrice
from keeptrusts_authz.pricing import genai
from keeptrusts_authz.pricing.cost import PriceBook, Usage, output_bound_for

_SHIPPED = "shipped default"
DEFAULTS_CURRENCY = "USD"
# Keys a prices.yaml entry may have: limits only, every price comes from genai-prices.
_LIMIT_KEYS = frozenset(
    {
        "provider",
        "genai_prices",
        "max_output_tokens",
        "beta_max_output_tokens",
        "hidden_reasoning",
        "image_input_tokens",
        "aliases",
    }
)

Via = Literal["exact", "alias", "default"]


class UnknownModel(LookupError):
    """The model is not in the price table (and the config does not price unknown models)."""

    def __init__(self, model: str) -> None:
        self.model = model
        shown = model if len(model) <= 120 else model[:117] + "..."
        super().__init__(f"unknown model {shown!r}: not in the price table")


class PricingError(ConfigError):
    """The price table cannot be built from the config; `errors` are path-named lines."""

    def __init__(self, errors: list[str], source: str = "pricing") -> None:
        super().__init__(source, errors)


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    """The table entry a requested model name resolved to."""

    name: str
    price: ModelPrice
    requested: str = ""
    via: Via = "exact"

    @property
    def defaulted(self) -> bool:
        """True when the requested model is unknown and is priced as `pricing.default_model`."""
        return self.via == "default"

    def output_bound(self, requested: int | None, betas: tuple[str, ...] = ()) -> int:
        """Output tokens to reserve for: the request's limit capped by the model's maximum."""
        return output_bound_for(self.price, requested, betas)


@dataclass(frozen=True, slots=True)
class DefaultPrices:
    """The shipped table: the date of its price data, its currency, the models, and where each
    model's prices come from."""

    taken: date  # the newest dated price change in the genai-prices data
    currency: str
    models: Mapping[str, ModelPrice]
    sources: Mapping[str, str] = field(default_factory=dict)  # name -> "genai-prices 0.2.3 'id'"
    genai_version: str = ""
    limits_taken: date | None = None


@lru_cache(maxsize=1)
def load_default_prices() -> DefaultPrices:
    """The shipped models: limits from `prices.yaml` (package data), prices from the bundled
    genai-prices data as in force today; cached, immutable. Raises RuntimeError on a packaging
    bug (a shipped model genai-prices cannot price, an alias it prices as another model)."""
    text = resources.files("keeptrusts_authz.pricing").joinpath("prices.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    limits_taken = date.fromisoformat(str(data["limits_taken"]))
    version = genai.genai_version()
    shipped_names = {_key(str(n)) for n in data["models"]}
    taken_aliases: set[str] = set()
    models: dict[str, ModelPrice] = {}
    sources: dict[str, str] = {}
    for name, entry in data["models"].items():
        name = str(name)
        extra = set(entry) - _LIMIT_KEYS
        if extra:
            raise RuntimeError(
                f"shipped prices.yaml: models.{name}: {sorted(extra)} not allowed: prices come "
                "from genai-prices (override them under pricing.models)"
            )
        limits = dict(entry)
        ref = str(limits.pop("genai_prices", name))
        provider = str(limits["provider"])
        try:
            found = genai.model_prices(provider, ref)
        except genai.GenaiPricesError as exc:
            raise RuntimeError(f"shipped prices.yaml: models.{name}: {exc}") from exc
        aliases: list[str] = []
        for alias in [*limits.pop("aliases", []), *found.names]:
            akey = _key(str(alias))
            if akey == _key(name) or akey in shipped_names or akey in taken_aliases:
                continue
            if not genai.matches_same(provider, ref, str(alias)):
                raise RuntimeError(
                    f"shipped prices.yaml: models.{name}: alias {alias!r} is not priced as "
                    f"{found.model_id!r} by genai-prices {version}"
                )
            taken_aliases.add(akey)
            aliases.append(str(alias))
        try:
            models[name] = ModelPrice.model_validate(
                {
                    **limits,
                    **found.prices,
                    "aliases": aliases,
                    "context_window": found.context_window,
                }
            )
        except ValidationError as exc:  # a packaging bug, not a user error
            raise RuntimeError(f"shipped prices.yaml: models.{name}: {exc}") from exc
        sources[name] = f"{genai.PACKAGE} {version} {found.model_id!r}"
    currency = str(data.get("currency", DEFAULTS_CURRENCY))
    return DefaultPrices(
        genai.data_date(),
        currency,
        MappingProxyType(models),
        MappingProxyType(sources),
        version,
        limits_taken,
    )


@dataclass(frozen=True, slots=True)
class _Entry:
    name: str
    price: ModelPrice
    origin: str  # "shipped default '<name>'" or "pricing.models.<name>"
    book: PriceBook = field(compare=False)

    @property
    def shipped(self) -> bool:
        return self.origin.startswith(_SHIPPED)


def _key(name: str) -> str:
    return name.strip().lower()


class PriceTable:
    """Model prices with name/alias resolution and exact integer-micro cost functions."""

    def __init__(
        self,
        models: Mapping[str, ModelPrice],
        *,
        unknown_model: Literal["block", "default"] = "block",
        default_model: str | None = None,
        origins: Mapping[str, str] | None = None,
        prices_taken: date | None = None,
        sources: Mapping[str, str] | None = None,
        genai_version: str | None = None,
    ) -> None:
        """Build and validate. `origins` names where each model came from, for error messages
        (default `pricing.models.<name>`). Raises `PricingError` listing every problem."""
        errors: list[str] = []
        self.prices_taken = prices_taken
        self.genai_version = genai_version
        self._sources = dict(sources or {})
        self._entries: dict[str, _Entry] = {}
        # lower-cased name or alias -> (canonical name, how it matched)
        self._index: dict[str, tuple[str, Literal["exact", "alias"]]] = {}
        origins = origins or {}
        for name, price in models.items():
            origin = origins.get(name, f"pricing.models.{name}")
            key = _key(name)
            if not key:
                errors.append(f"{origin}: model name must not be empty")
                continue
            if key in self._index:
                other, how = self._index[key]
                what = "the name" if how == "exact" else f"an alias of model {other!r}"
                errors.append(
                    f"{origin}: model name {name!r} is already {what} "
                    f"({self._entries[_key(other)].origin})"
                )
                continue
            self._entries[key] = _Entry(name, price, origin, PriceBook.of(price))
            self._index[key] = (name, "exact")
        for key, entry in list(self._entries.items()):
            for i, alias in enumerate(entry.price.aliases):
                akey = _key(alias)
                if akey == key:
                    continue  # an alias equal to its own name is harmless
                if not akey:
                    errors.append(f"{entry.origin}.aliases[{i}]: alias must not be empty")
                    continue
                hit = self._index.get(akey)
                if hit is not None and hit[0] != entry.name:
                    clash = self._entries[_key(hit[0])]
                    if entry.shipped and not clash.shipped and hit[1] == "exact":
                        # A config model took the name a shipped model answers to: blame the
                        # config entry (the fix is there: override the shipped model instead).
                        errors.append(
                            f"{clash.origin}: model name {clash.name!r} is already an alias of "
                            f"model {entry.name!r} ({entry.origin}); override {entry.name!r} "
                            "to drop the alias"
                        )
                    else:
                        what = "model" if hit[1] == "exact" else "an alias of model"
                        errors.append(
                            f"{entry.origin}.aliases[{i}]: alias {alias!r} of model "
                            f"{entry.name!r} collides with {what} {clash.name!r} ({clash.origin})"
                        )
                    continue
                self._index[akey] = (entry.name, "alias")
        self.unknown_model = unknown_model
        self._default: _Entry | None = None
        if default_model is not None and not errors:
            found = self.lookup(default_model)
            if found is None:
                errors.append(
                    f"pricing.default_model: unknown model {default_model!r} "
                    "(not in the price table)"
                )
            else:
                self._default = self._entries[_key(found.name)]
        if unknown_model == "default" and default_model is None:
            errors.append("pricing.default_model: required when unknown_model is 'default'")
        if errors:
            raise PricingError(errors)

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def defaults(cls) -> PriceTable:
        """The shipped table alone (unknown models blocked)."""
        shipped = load_default_prices()
        return cls(
            shipped.models,
            origins={n: f"{_SHIPPED} {n!r}" for n in shipped.models},
            prices_taken=shipped.taken,
            sources=shipped.sources,
            genai_version=shipped.genai_version,
        )

    @classmethod
    def from_config(cls, cfg: Config) -> PriceTable:
        """Shipped defaults (unless `pricing.include_defaults: false`) overridden and extended by
        `pricing.models` (an entry with a shipped model's name replaces it, aliases included)."""
        pricing = cfg.pricing
        models: dict[str, ModelPrice] = {}
        origins: dict[str, str] = {}
        taken: date | None = None
        sources: dict[str, str] = {}
        version: str | None = None
        errors: list[str] = []
        if pricing.include_defaults:
            shipped = load_default_prices()
            taken = shipped.taken
            version = shipped.genai_version
            overridden = {_key(n) for n in pricing.models}
            currency = cfg.organization.currency
            if currency != shipped.currency:
                errors.append(
                    f"pricing.include_defaults: the shipped prices are in {shipped.currency} but "
                    f"organization.currency is {currency}; set include_defaults: false and price "
                    f"every model in {currency} under pricing.models"
                )
            for name, price in shipped.models.items():
                if _key(name) not in overridden:
                    models[name] = price
                    origins[name] = f"{_SHIPPED} {name!r}"
                    sources[name] = shipped.sources.get(name, origins[name])
        for name, price in pricing.models.items():
            models[name] = price
            origins[name] = f"pricing.models.{name}"
            sources[name] = f"config override (pricing.models.{name})"
        if errors:
            raise PricingError(errors)
        return cls(
            models,
            unknown_model=pricing.unknown_model,
            default_model=pricing.default_model,
            origins=origins,
            prices_taken=taken,
            sources=sources,
            genai_version=version,
        )

    # -- lookup -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[str]:
        return (e.name for e in self._entries.values())

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and self.lookup(model) is not None

    @property
    def models(self) -> Mapping[str, ModelPrice]:
        return MappingProxyType({e.name: e.price for e in self._entries.values()})

    def origin(self, name: str) -> str:
        """Where a model's entry came from (`shipped default 'x'` or `pricing.models.x`)."""
        return self._entries[_key(name)].origin

    def names_and_aliases(self) -> list[str]:
        """Every name a model answers to directly (lower-cased), for glob checks."""
        return list(self._index)

    def lookup(self, model: str) -> ResolvedModel | None:
        """Resolve by exact name or alias; None when unknown (never defaults, never strips a
        snapshot date)."""
        if not isinstance(model, str):
            return None
        hit = self._index.get(_key(model))
        if hit is None:
            return None
        return ResolvedModel(hit[0], self._entries[_key(hit[0])].price, model, hit[1])

    def resolve(self, model: str) -> ResolvedModel:
        """The entry pricing `model`; raises `UnknownModel` unless unknown models are defaulted."""
        found = self.lookup(model)
        if found is not None:
            return found
        if self._default is not None and self.unknown_model == "default":
            return ResolvedModel(self._default.name, self._default.price, str(model), "default")
        raise UnknownModel(str(model))

    # -- cost ---------------------------------------------------------------------------------

    def _book(self, model: str | ResolvedModel) -> PriceBook:
        resolved = model if isinstance(model, ResolvedModel) else self.resolve(model)
        entry = self._entries.get(_key(resolved.name))
        return entry.book if entry is not None else PriceBook.of(resolved.price)

    @overload
    def cost_micros(
        self, model: str | ResolvedModel, input_tokens: Usage, /, *, service_tier: str | None = None
    ) -> int: ...

    @overload
    def cost_micros(
        self,
        model: str | ResolvedModel,
        input_tokens: int,
        output_tokens: int,
        cached_tokens: int = 0,
        cache_write_tokens: int = 0,
        *,
        service_tier: str | None = None,
    ) -> int: ...

    def cost_micros(
        self,
        model: str | ResolvedModel,
        input_tokens: int | Usage,
        output_tokens: int = 0,
        cached_tokens: int = 0,
        cache_write_tokens: int = 0,
        *,
        service_tier: str | None = None,
    ) -> int:
        """Real cost of a request in integer micros, rounded UP to 1 micro.

        `input_tokens` is the TOTAL prompt tokens INCLUDING cached ones (OpenAI's convention);
        `cached_tokens` of them are priced at `cached_input_per_1m` (the input price when the model
        has none), the rest at `input_per_1m`. Pass a `Usage` instead of the three counts if you
        have one. `service_tier` is the tier the provider reported (None/`default`/`standard`:
        the standard prices; a tier the table does not know: the model's highest prices); a
        prompt above the long-context threshold is billed at the long-context rates.
        Raises `UnknownModel` (see `resolve`), TypeError/ValueError on bad counts.
        """
        usage = (
            input_tokens
            if isinstance(input_tokens, Usage)
            else Usage(input_tokens, output_tokens, cached_tokens, cache_write_tokens)
        )
        return self._book(model).billed(usage, service_tier).cost(usage)

    def worst_case_micros(
        self,
        model: str | ResolvedModel,
        input_tokens: int,
        output_tokens: int,
        service_tier: str | None = None,
    ) -> int:
        """The most these token counts can cost: every prompt token at the model's highest prompt
        price (a cache write can cost more than plain input), nothing from the cache, over every
        tier a request naming `service_tier` can be billed at, at the long-context rates when
        `input_tokens` is above the threshold."""
        return self._book(model).worst_case(input_tokens, output_tokens, service_tier)

    def book(self, model: str | ResolvedModel) -> PriceBook:
        """Every rate the model can be billed at (for `keeptrusts-authz prices`)."""
        return self._book(model)

    def source(self, name: str) -> str:
        """Where a model's prices come from: `genai-prices <version> '<id>'` or the config."""
        entry = self._entries[_key(name)]
        return self._sources.get(entry.name, entry.origin)
