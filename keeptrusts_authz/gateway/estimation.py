"""The worst-case cost of a request: what its reservation holds.

All input at the full input price (cache hits are only known afterwards) and every choice at its
output limit, so a request's real cost never exceeds its reservation (see request_parsing for why
the token bounds are strict).
"""

from __future__ import annotations

from keeptrusts_authz.config.models import Enforcement
from keeptrusts_authz.gateway.request_parsing import ParsedRequest
from keeptrusts_authz.pricing import PriceTable, ResolvedModel


def reservation_tokens(
    parsed: ParsedRequest, priced: ResolvedModel, enforcement: Enforcement
) -> tuple[int, int]:
    """(input, output) token bounds for this request on this model."""
    per_image = priced.price.image_input_tokens or enforcement.image_input_tokens
    input_tokens = parsed.input_tokens_bound + parsed.images * per_image
    if parsed.server_history:
        input_tokens += enforcement.server_history_tokens
    output_tokens = (
        priced.output_bound(parsed.output_bound, parsed.betas) * parsed.choices
        + parsed.extra_output_tokens
    )
    return input_tokens, output_tokens


def reservation_micros(
    parsed: ParsedRequest, priced: ResolvedModel, prices: PriceTable, enforcement: Enforcement
) -> int:
    input_tokens, output_tokens = reservation_tokens(parsed, priced, enforcement)
    return prices.worst_case_micros(priced, input_tokens, output_tokens)
