"""Exact request cost in integer micros: token counts x per-1M prices, rounded UP to 1 micro.

A price `p` per 1M tokens costs `p / 1_000_000` currency units per token, i.e. exactly `p` micros
per token, so a request costs `sum(tokens_i * price_i)` micros. Prices are Decimals; each is turned
into an integer ratio once, and the sum is computed with integers only (no float, no Decimal
context precision to run out of), then rounded up (ceiling) to a whole micro.

Token convention (the one OpenAI uses): `input_tokens` is the TOTAL number of prompt tokens,
cached ones included; `cached_tokens` is the part of them that was a prompt-cache read. The cost
function subtracts: uncached = input_tokens - cached_tokens - cache_write_tokens (cache writes,
which Anthropic charges above the input price, are part of the prompt too). Anthropic reports
`input_tokens` WITHOUT cache reads and writes; convert with `Usage.from_anthropic`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from keeptrusts_authz.config.models import LongContextPrice, ModelPrice, PriceSet


def _check_count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")
    return value


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage of one request, in the OpenAI convention (cached tokens are part of input)."""

    input_tokens: int
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    # The part of cache_write_tokens written with the one-hour TTL (priced on its own).
    cache_write_1h_tokens: int = 0

    def __post_init__(self) -> None:
        _check_count("input_tokens", self.input_tokens)
        _check_count("output_tokens", self.output_tokens)
        _check_count("cached_tokens", self.cached_tokens)
        _check_count("cache_write_tokens", self.cache_write_tokens)
        _check_count("cache_write_1h_tokens", self.cache_write_1h_tokens)
        if self.cache_write_1h_tokens > self.cache_write_tokens:
            raise ValueError(
                f"cache_write_1h_tokens ({self.cache_write_1h_tokens}) exceeds cache_write_tokens "
                f"({self.cache_write_tokens}): the 1h writes are part of all writes"
            )
        if self.cached_tokens + self.cache_write_tokens > self.input_tokens:
            raise ValueError(
                f"cached_tokens + cache_write_tokens ({self.cached_tokens} + "
                f"{self.cache_write_tokens}) exceeds input_tokens ({self.input_tokens}); "
                "input_tokens must be the total prompt tokens including cached ones"
            )

    @classmethod
    def from_openai(
        cls, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0
    ) -> Usage:
        """OpenAI `usage`: prompt_tokens (incl. `prompt_tokens_details.cached_tokens`)."""
        return cls(prompt_tokens, completion_tokens, cached_tokens)

    @classmethod
    def from_anthropic(
        cls,
        input_tokens: int,
        output_tokens: int,
        cache_read_input_tokens: int = 0,
        cache_creation_input_tokens: int = 0,
        cache_creation_1h_input_tokens: int = 0,
    ) -> Usage:
        """Anthropic `usage`: input_tokens excludes cache reads and writes, so add them back;
        the writes are priced at the model's `cache_write_per_1m`, those of them with the 1h TTL
        (`cache_creation.ephemeral_1h_input_tokens`) at `cache_write_1h_per_1m`."""
        _check_count("input_tokens", input_tokens)
        _check_count("cache_read_input_tokens", cache_read_input_tokens)
        _check_count("cache_creation_input_tokens", cache_creation_input_tokens)
        total = input_tokens + cache_read_input_tokens + cache_creation_input_tokens
        return cls(
            total,
            output_tokens,
            cache_read_input_tokens,
            cache_creation_input_tokens,
            cache_creation_1h_input_tokens,
        )


@dataclass(frozen=True, slots=True)
class Rates:
    """A model's prices as integer numerators over one common denominator (micros per token)."""

    input: int
    cached_input: int
    output: int
    denominator: int
    cache_write: int = 0
    cache_write_1h: int = 0

    @classmethod
    def of(cls, price: ModelPrice | PriceSet) -> Rates:
        if price.input_per_1m is None or price.output_per_1m is None:
            raise ValueError("a price set needs input_per_1m and output_per_1m")
        cached = price.cached_input_per_1m
        write = price.input_per_1m if price.cache_write_per_1m is None else price.cache_write_per_1m
        write_1h = write if price.cache_write_1h_per_1m is None else price.cache_write_1h_per_1m
        ratios = [
            _ratio(price.input_per_1m),
            _ratio(price.input_per_1m if cached is None else cached),
            _ratio(price.output_per_1m),
            _ratio(write),
            _ratio(write_1h),
        ]
        den = math.lcm(*(d for _, d in ratios))
        (i, di), (c, dc), (o, do), (w, dw), (h, dh) = ratios
        return cls(
            i * (den // di),
            c * (den // dc),
            o * (den // do),
            den,
            w * (den // dw),
            h * (den // dh),
        )

    def _scaled(self, den: int) -> tuple[int, int, int, int, int]:
        k = den // self.denominator
        return (
            self.input * k,
            self.cached_input * k,
            self.output * k,
            self.cache_write * k,
            self.cache_write_1h * k,
        )

    @classmethod
    def most(cls, rates: Iterable[Rates]) -> Rates:
        """Each price at its highest over `rates`: a price set no one of them exceeds."""
        given = list(rates)
        den = math.lcm(*(r.denominator for r in given))
        tops = [max(column) for column in zip(*(r._scaled(den) for r in given), strict=True)]
        i, c, o, w, h = tops
        return cls(i, c, o, den, w, h)

    def cost(self, usage: Usage) -> int:
        uncached = usage.input_tokens - usage.cached_tokens - usage.cache_write_tokens
        numerator = (
            uncached * self.input
            + usage.cached_tokens * self.cached_input
            + (usage.cache_write_tokens - usage.cache_write_1h_tokens) * self.cache_write
            + usage.cache_write_1h_tokens * self.cache_write_1h
            + usage.output_tokens * self.output
        )
        return -(-numerator // self.denominator)  # ceiling division: round UP to 1 micro

    def worst_case(self, input_tokens: int, output_tokens: int) -> int:
        """The most these counts can cost at these rates: every prompt token at the highest
        prompt price (a cache write can cost more than plain input), nothing from the cache."""
        top = max(self.input, self.cache_write, self.cache_write_1h)
        writes = input_tokens if top > self.input else 0
        writes_1h = writes if top == self.cache_write_1h else 0
        return self.cost(Usage(input_tokens, output_tokens, 0, writes, writes_1h))


_PRICE_FIELDS = (
    "input_per_1m",
    "output_per_1m",
    "cached_input_per_1m",
    "cache_write_per_1m",
    "cache_write_1h_per_1m",
)


def _overlay(base: PriceSet | ModelPrice, *over: PriceSet | ModelPrice | None) -> PriceSet:
    """`base` with every price the overlays give replacing it (later overlays win). Defaults
    (cached -> input, write -> input, 1h write -> write) apply after merging, so a tier that
    raises the input price also raises an unset cache price with it."""
    values = {f: getattr(base, f) for f in _PRICE_FIELDS}
    for layer in over:
        if layer is not None:
            values.update({f: v for f in _PRICE_FIELDS if (v := getattr(layer, f)) is not None})
    return PriceSet(**values)


# The service tier a provider reports for its standard prices (OpenAI `default`, Anthropic
# `standard`), or that a request names without choosing a priced tier.
STANDARD_TIERS = frozenset({"", "default", "standard", "auto", "standard_only"})
# What a request names when it leaves the tier to the provider's account (none, or `auto`):
# the account's default tier, which may be priority (an OpenAI project set to priority, an
# Anthropic organisation with Priority Tier capacity). Unless the provider config declares that
# default (`providers[].default_service_tier`), it can be any tier of the model.
PROVIDER_DEFAULT_TIERS = frozenset({"", "auto"})


@dataclass(frozen=True, slots=True)
class TierRates:
    """The rates of one service tier: base, and above `long_above` prompt tokens the long ones."""

    rates: Rates
    long_above: int | None = None
    long_rates: Rates | None = None

    def for_input(self, input_tokens: int) -> Rates:
        long = self.long_rates
        if long is not None and self.long_above is not None and input_tokens > self.long_above:
            return long
        return self.rates

    def all(self) -> list[Rates]:
        return [self.rates] + ([self.long_rates] if self.long_rates is not None else [])


@dataclass(frozen=True, slots=True)
class PriceBook:
    """Every rate a model can be billed at: standard and each service tier, each with its
    long-context rates. Built once per model."""

    standard: TierRates
    tiers: Mapping[str, TierRates]

    @classmethod
    def of(cls, price: ModelPrice) -> PriceBook:
        base = _overlay(price)  # the ModelPrice's own prices as a PriceSet
        standard = cls._tier(base, price.long_context, None)
        tiers = {
            name.strip().lower(): cls._tier(
                _overlay(base, tier), price.long_context, tier.long_context
            )
            for name, tier in price.service_tiers.items()
        }
        return cls(standard, tiers)

    @staticmethod
    def _tier(
        prices: PriceSet, model_long: LongContextPrice | None, own_long: LongContextPrice | None
    ) -> TierRates:
        """Long-context prices of a tier: its prices, then the model's long-context prices, then
        the tier's own long-context prices; the threshold is the tier's, else the model's."""
        threshold = own_long or model_long
        if threshold is None:
            return TierRates(Rates.of(prices))
        long_prices = _overlay(prices, model_long, own_long)
        return TierRates(Rates.of(prices), threshold.above_input_tokens, Rates.of(long_prices))

    def tier(self, service_tier: str | None) -> TierRates | None:
        """The rates of a tier by the name the provider uses; None for a tier the table lacks."""
        key = (service_tier or "").strip().lower()
        if key in STANDARD_TIERS:
            return self.standard
        return self.tiers.get(key)

    def billed(self, usage: Usage, service_tier: str | None = None) -> Rates:
        """The rates a reported usage is billed at. A tier the table does not know is billed at
        the highest rates of the model (never below what it could cost)."""
        tier = self.tier(service_tier)
        if tier is None:
            return Rates.most(
                t.for_input(usage.input_tokens) for t in (self.standard, *self.tiers.values())
            )
        return tier.for_input(usage.input_tokens)

    def reachable(self, service_tier: str | None) -> list[TierRates]:
        """The tiers a request naming `service_tier` can be billed at: standard always (a
        provider may serve a tier request at standard), plus the named one; every tier when the
        name is one the table does not know, or when it names none (None, "", `auto`: the
        account's default tier, unknown here; see PROVIDER_DEFAULT_TIERS)."""
        if (service_tier or "").strip().lower() in PROVIDER_DEFAULT_TIERS:
            return [self.standard, *self.tiers.values()]
        tier = self.tier(service_tier)
        if tier is None:
            return [self.standard, *self.tiers.values()]
        return [self.standard] if tier is self.standard else [self.standard, tier]

    def worst_case(self, input_tokens: int, output_tokens: int, service_tier: str | None) -> int:
        return max(
            t.for_input(input_tokens).worst_case(input_tokens, output_tokens)
            for t in self.reachable(service_tier)
        )


def _ratio(value: Decimal) -> tuple[int, int]:
    if not value.is_finite() or value < 0:
        raise ValueError(f"a price must be a finite non-negative decimal, got {value}")
    num, den = value.as_integer_ratio()
    return num, den


def cost_micros_for(
    price: ModelPrice, input_tokens: int, output_tokens: int, cached_tokens: int = 0
) -> int:
    """Real cost of a request in micros (see the module docstring for the token convention)."""
    return Rates.of(price).cost(Usage(input_tokens, output_tokens, cached_tokens))


def output_bound_for(price: ModelPrice, requested: int | None, betas: tuple[str, ...] = ()) -> int:
    """The output tokens to reserve for: the request's limit capped by the model's maximum (the
    largest one the request's betas unlock)."""
    cap = max([price.max_output_tokens, *(price.beta_max_output_tokens.get(b, 0) for b in betas)])
    if requested is None:
        return cap
    return min(_check_count("output_bound", requested), cap)
