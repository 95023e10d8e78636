"""Turn one access-log entry into the settlement of its reservation (DESIGN section 4).

- usage reported and complete -> settle at the real cost, at the service tier the provider
  reports (the one the request asked for when it reports none) and the long-context rates when
  the reported prompt is above the model's threshold;
- no usage and the provider itself answered 4xx/5xx, or the request never reached the provider
  -> release (cost 0);
- a stream cut off before its usage (client went away, Envoy timed out or reset it) -> the
  tightest bound the gateway can prove, marked estimated: the input the provider reported
  (Anthropic's message_start) or the reservation's input bound, plus the output it streamed
  (byte-level BPE: a token is at least one byte, so streamed bytes bound streamed tokens) and a
  few per choice that never show (stop and tool-call framing tokens), at most the reservation.
  When the model or request bills reasoning it never streams, nothing bounds the output: the
  reservation is charged;
- anything else (client went away before the answer, an Envoy-made 5xx after the whole request
  reached the provider, a stream without usage) -> settle at the estimate, marked estimated:
  never $0 for a response that may have produced tokens, since providers bill work the client
  did not wait for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keeptrusts_authz import envoy_contract as ec
from keeptrusts_authz.pricing import PriceTable, UnknownModel, Usage
from keeptrusts_authz.wallets.models import JournaledCharge, SettleRequest

# Output tokens a choice can be billed for without streaming them: the stop token, tool-call and
# message framing.
PER_CHOICE_UNSTREAMED_TOKENS = 16


@dataclass(frozen=True)
class Release:
    reservation_id: str
    reason: str


def journaled_charge(
    authz: dict[str, Any],
    item: SettleRequest,
    *,
    admitted_ms: int,
    open_until_ms: int,
    ended_ms: int = 0,
) -> JournaledCharge | None:
    """What the settlement journal keeps of a settle (wallets.models.JournaledCharge), from the
    entry's signed metadata: None when it names no paying wallet (a request let through while
    the store was unreachable holds no reservation of its own)."""
    wallet = authz.get(ec.AUTHZ_WALLET)
    if not wallet or not isinstance(wallet, str):
        return None
    priced = str(authz.get(ec.AUTHZ_PRICED_MODEL) or authz.get(ec.AUTHZ_MODEL) or "")
    return JournaledCharge(
        reservation_id=item.reservation_id,
        wallet=wallet,
        team=str(authz.get(ec.AUTHZ_TEAM) or ""),
        group=str(authz.get(ec.AUTHZ_GROUP) or ""),
        user=str(authz.get(ec.AUTHZ_USER) or ""),
        # settle.lua's rule for "": the reservation's model, which is the priced name.
        model=item.model or priced,
        label_model=item.label_model or priced,
        cost=item.cost,
        estimated=item.estimated,
        input_tokens=item.input_tokens,
        output_tokens=item.output_tokens,
        cached_tokens=item.cached_tokens,
        admitted_ms=admitted_ms,
        ended_ms=ended_ms,
        open_until_ms=open_until_ms,
    )


def _int(value: Any) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


def _billed_tier(authz: dict[str, Any], usage: dict[str, Any]) -> str | None:
    """The service tier the provider reports it billed at; the one the request asked for when
    it reports none (what the reservation covered)."""
    reported = usage.get(ec.USAGE_SERVICE_TIER)
    if isinstance(reported, str) and reported:
        return reported
    asked = authz.get(ec.AUTHZ_SERVICE_TIER)
    return asked if isinstance(asked, str) and asked else None


def settlement_for(
    authz: dict[str, Any],
    usage: dict[str, Any],
    response_code: int,
    prices: PriceTable,
    upstream_reached: bool = True,
    envoy_failure: bool = False,
) -> SettleRequest | Release | None:
    """`response_code` is 0 when the client got no response (it went away first);
    `upstream_reached` says whether the whole request was sent to the provider;
    `envoy_failure` that Envoy ended the exchange itself (timeout, reset), so a 5xx is its own
    and not the provider's reply."""
    reservation_id = authz.get(ec.AUTHZ_RESERVATION_ID)
    if not reservation_id or not isinstance(reservation_id, str):
        return None  # denied before reserving (401/402/400...) or tracked without a reservation
    estimate = _int(authz.get(ec.AUTHZ_ESTIMATE_MICROS))
    found = bool(usage.get(ec.USAGE_FOUND))
    complete = bool(usage.get(ec.USAGE_COMPLETE, found))
    charged_failure = envoy_failure and upstream_reached
    if not found and response_code >= 400 and not charged_failure:
        return Release(reservation_id, f"provider_status_{response_code}")
    if not found and response_code == 0 and not upstream_reached:
        return Release(reservation_id, "provider_not_reached")
    # The usage counters' model label: the price-table name the admission priced the request as
    # (bounded); "" lets the settle script use the reservation's model, the same name.
    label = str(authz.get(ec.AUTHZ_PRICED_MODEL) or "")
    if not found or not complete:
        bounded = _cut_off(authz, usage, prices, reservation_id, estimate, label)
        if bounded is not None:
            return bounded
        return SettleRequest(
            reservation_id,
            estimate,
            estimated=True,
            model=str(authz.get(ec.AUTHZ_MODEL, "")),
            label_model=label,
        )

    input_tokens = _int(usage.get(ec.USAGE_INPUT_TOKENS))
    output_tokens = _int(usage.get(ec.USAGE_OUTPUT_TOKENS))
    cached = _int(usage.get(ec.USAGE_CACHED_TOKENS))
    anthropic = usage.get(ec.USAGE_API) == "anthropic"
    writes = _int(usage.get(ec.USAGE_CACHE_CREATION_TOKENS)) if anthropic else 0
    writes_1h = min(writes, _int(usage.get(ec.USAGE_CACHE_CREATION_HOUR_TOKENS)))

    def reported_usage() -> Usage:
        # Built per attempt, as the price table would: a count it refuses fails that attempt.
        if anthropic:
            return Usage.from_anthropic(input_tokens, output_tokens, cached, writes, writes_1h)
        return Usage.from_openai(input_tokens, output_tokens, cached)

    tier = _billed_tier(authz, usage)
    reported = str(usage.get(ec.USAGE_MODEL) or "")
    requested = str(authz.get(ec.AUTHZ_PRICED_MODEL) or authz.get(ec.AUTHZ_MODEL) or "")
    cost = None
    priced = None
    for model in (reported, requested):
        if not model:
            continue
        try:
            priced = reported_usage()
            cost = prices.cost_micros(model, priced, service_tier=tier)
            break
        except UnknownModel:
            continue
    if cost is None or priced is None:
        return SettleRequest(
            reservation_id, estimate, estimated=True, model=requested, label_model=label
        )
    return SettleRequest(
        reservation_id,
        cost,
        estimated=False,
        input_tokens=priced.input_tokens,  # the total prompt, cache reads and writes included
        output_tokens=output_tokens,
        cached_tokens=cached,
        model=reported or requested,
        label_model=label,
    )


def _cut_off(
    authz: dict[str, Any],
    usage: dict[str, Any],
    prices: PriceTable,
    reservation_id: str,
    estimate: int,
    label: str,
) -> SettleRequest | None:
    """A stream that ended before its usage: input bound + streamed-output bound (module
    docstring), or None when nothing tighter than the reservation is proven."""
    if not usage.get(ec.USAGE_STREAM) or authz.get(ec.AUTHZ_OUTPUT_BOUNDED) is not True:
        return None
    input_bound = _int(authz.get(ec.AUTHZ_INPUT_BOUND_TOKENS))
    if input_bound <= 0:
        return None
    model = str(authz.get(ec.AUTHZ_PRICED_MODEL) or authz.get(ec.AUTHZ_MODEL) or "")
    streamed = _int(usage.get(ec.USAGE_STREAMED_OUTPUT_BYTES))
    choices = max(1, _int(usage.get(ec.USAGE_STREAMED_CHOICES)))
    output = max(
        _int(usage.get(ec.USAGE_OUTPUT_TOKENS)),
        streamed
        + choices * PER_CHOICE_UNSTREAMED_TOKENS
        + _int(authz.get(ec.AUTHZ_EXTRA_OUTPUT_TOKENS)),
    )
    try:
        if usage.get(ec.USAGE_FOUND) and usage.get(ec.USAGE_API) == "anthropic":
            # message_start reported the prompt exactly.
            writes = _int(usage.get(ec.USAGE_CACHE_CREATION_TOKENS))
            priced = Usage.from_anthropic(
                _int(usage.get(ec.USAGE_INPUT_TOKENS)),
                output,
                _int(usage.get(ec.USAGE_CACHED_TOKENS)),
                writes,
                min(writes, _int(usage.get(ec.USAGE_CACHE_CREATION_HOUR_TOKENS))),
            )
            cost = prices.cost_micros(model, priced, service_tier=_billed_tier(authz, usage))
        else:
            # The tier the stream's chunks already reported (OpenAI sends it on each one), else
            # the one asked for: none/`auto` bounds the cut-off over every tier (review #5).
            cost = prices.worst_case_micros(model, input_bound, output, _billed_tier(authz, usage))
    except UnknownModel:
        return None
    # No token counts: bounds are not usage (counters and reports hold what providers reported),
    # and a later correction adds the real ones.
    return SettleRequest(
        reservation_id,
        min(cost, estimate),
        estimated=True,
        model=str(authz.get(ec.AUTHZ_MODEL, "")),
        label_model=label,
    )
