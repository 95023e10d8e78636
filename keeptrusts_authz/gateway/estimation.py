"""The worst-case cost of a request: what its reservation holds.

All input at the highest prompt price (cache hits are only known afterwards), every choice at its
output limit (the largest a beta the request names unlocks), over every price tier the request
can reach: the service tier it names (standard always; every tier when it names none or `auto`
and the provider config does not declare its `default_service_tier`), and the long-context
rates when its input bound is above the model's threshold. So a request's real cost never
exceeds its reservation (see request_parsing for why the token bounds are strict).

What the body does not show is added as allowances: images, the server-side history a chained
Responses request pulls in (`enforcement.server_history_tokens`, by default the model's context
window), and the group's `unbounded_allowance_tokens` per unbounded input when its policy is
`allowance` (`unbounded_refusal` refuses them otherwise).
"""

from __future__ import annotations

from keeptrusts_authz.config.models import Config, ConsumerGroup, Enforcement, Provider
from keeptrusts_authz.gateway.request_parsing import ParsedRequest, RequestError
from keeptrusts_authz.gateway.unbounded_inputs import describe
from keeptrusts_authz.pricing import PROVIDER_DEFAULT_TIERS, PriceTable, ResolvedModel


def requested_tier(asked: str | None, provider: Provider) -> str | None:
    """The service tier a request can be billed at by default: the one it names, or, when it
    leaves the choice to the account (none, `auto`), the provider's declared
    `default_service_tier`; still None/`auto` (every tier) when the config declares none."""
    if (asked or "").strip().lower() in PROVIDER_DEFAULT_TIERS and provider.default_service_tier:
        return provider.default_service_tier
    return asked


def history_tokens(priced: ResolvedModel, enforcement: Enforcement) -> int | None:
    """The server-side history a chained request can carry: the configured allowance, else the
    model's context window; None when neither is known (an unbounded input then)."""
    if enforcement.server_history_tokens is not None:
        return enforcement.server_history_tokens
    return priced.price.context_window


def unbounded_features(
    parsed: ParsedRequest, priced: ResolvedModel, enforcement: Enforcement
) -> tuple[tuple[str, int], ...]:
    """The request's unbounded inputs, server-side history included when nothing bounds it."""
    features = parsed.unbounded
    if parsed.server_history and history_tokens(priced, enforcement) is None:
        features = tuple(sorted((*features, ("server_history", 1))))
    return features


def unbounded_refusal(
    cfg: Config, group: ConsumerGroup, parsed: ParsedRequest, priced: ResolvedModel
) -> RequestError | None:
    """The 400 for a request with unbounded inputs when the group refuses them; else None."""
    features = unbounded_features(parsed, priced, cfg.enforcement)
    if not features:
        return None
    policy, _ = cfg.unbounded_for(group)
    if policy == "allowance":
        return None
    return RequestError(
        400,
        "unbounded_input",
        f"this request uses {describe(features)}, whose input the gateway cannot bound before "
        f"the provider bills it; consumer group {group.name!r} refuses such requests "
        "(unbounded_inputs: refuse)",
    )


def reservation_tokens(
    parsed: ParsedRequest,
    priced: ResolvedModel,
    enforcement: Enforcement,
    allowance_tokens: int | None = None,
) -> tuple[int, int]:
    """(input, output) token bounds for this request on this model; `allowance_tokens` per
    unbounded input (the group's allowance; admission refuses them when it has none)."""
    per_image = priced.price.image_input_tokens or enforcement.image_input_tokens
    input_tokens = parsed.input_tokens_bound + parsed.images * per_image
    features = unbounded_features(parsed, priced, enforcement)
    if parsed.server_history:
        input_tokens += history_tokens(priced, enforcement) or 0
    if allowance_tokens is not None:
        input_tokens += allowance_tokens * sum(count for _, count in features)
    output_tokens = (
        priced.output_bound(parsed.output_bound, parsed.betas) * parsed.choices
        + parsed.extra_output_tokens
    )
    return input_tokens, output_tokens


def reservation_micros(
    parsed: ParsedRequest,
    priced: ResolvedModel,
    prices: PriceTable,
    enforcement: Enforcement,
    allowance_tokens: int | None = None,
) -> int:
    input_tokens, output_tokens = reservation_tokens(parsed, priced, enforcement, allowance_tokens)
    return prices.worst_case_micros(priced, input_tokens, output_tokens, parsed.service_tier)
