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
from dataclasses import dataclass
from decimal import Decimal

from keeptrusts_authz.config.models import ModelPrice


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
    def of(cls, price: ModelPrice) -> Rates:
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
