"""Admission: decide one LLM request (who pays, how much to hold) and reserve it in one call.

Pure domain logic over plain inputs (headers, path, body); the ext_authz servicer only converts a
`Decision` to Envoy's CheckResponse. Nothing here raises to the caller: every refusal is a
Decision with an HTTP status, a JSON body and a reason.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from keeptrusts_authz.config.models import Config, ConsumerGroup, Provider
from keeptrusts_authz.envoy_contract import (
    AUTHZ_ESTIMATE_MICROS,
    AUTHZ_EXTRA_OUTPUT_TOKENS,
    AUTHZ_GROUP,
    AUTHZ_INPUT_BOUND_TOKENS,
    AUTHZ_MODEL,
    AUTHZ_MODELS_FILTER,
    AUTHZ_OUTPUT_BOUNDED,
    AUTHZ_PRICED_MODEL,
    AUTHZ_RESERVATION_ID,
    AUTHZ_SERVICE_TIER,
    AUTHZ_TEAM,
    AUTHZ_USER,
    AUTHZ_WALLET,
    CALLER_KEY_HEADERS,
    CHECK_ID_HEADER,
    PROVIDER_HEADER,
    RESERVATION_HEADER,
    TEAM_HEADER,
    TICKET_HEADER,
    WARNING_HEADER,
)
from keeptrusts_authz.errors import StoreRegressed, StoreUnavailable
from keeptrusts_authz.gateway.api_keys import KeyRing, presented_key
from keeptrusts_authz.gateway.estimation import (
    requested_tier,
    reservation_micros,
    reservation_tokens,
    unbounded_refusal,
)
from keeptrusts_authz.gateway.free_endpoints import (
    FREE_PATHS,
    count_tokens_model,
    free_kind,
    free_path,
    models_filter,
)
from keeptrusts_authz.gateway.request_parsing import (
    ANTHROPIC_BETA_HEADER,
    ApiKind,
    ParsedRequest,
    RequestError,
    api_kind,
    parse_request,
)
from keeptrusts_authz.gateway.signing import ReservationSigner, signer_from_config
from keeptrusts_authz.metrics import registry as m
from keeptrusts_authz.money import format_micros
from keeptrusts_authz.pricing import PriceTable, ResolvedModel, UnknownModel
from keeptrusts_authz.wallets.cascade import cascade_for, member_team
from keeptrusts_authz.wallets.holds import Holds
from keeptrusts_authz.wallets.models import ReserveRequest, ReserveResult
from keeptrusts_authz.wallets.service import WalletService

DecisionKind = Literal["allow", "warn", "hold", "block", "error"]

_USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")


@dataclass
class Decision:
    decision: DecisionKind
    reason: str
    status: int = 200
    body: dict[str, Any] | None = None
    upstream_headers: dict[str, str] = field(default_factory=dict)
    remove_headers: tuple[str, ...] = ()
    response_headers: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str | bool] = field(default_factory=dict)
    # Seconds spent held on a cost ticket: the Check-latency histogram leaves them out.
    hold_wait_seconds: float = 0.0

    @property
    def allowed(self) -> bool:
        return self.decision in ("allow", "warn")


def _deny(
    status: int,
    code: str,
    message: str,
    kind: DecisionKind = "block",
    reason: str | None = None,
    **extra: Any,
) -> Decision:
    error: dict[str, Any] = {"type": code, "message": message}
    error.update((k, v) for k, v in extra.items() if v is not None)
    return Decision(kind, reason or code, status=status, body={"error": error})


def _store_regressed() -> Decision:
    return _deny(
        503,
        "store_regressed",
        "the wallet store lost or rolled back its books; requests are refused until an operator "
        "restores it",
        "error",
    )


def _user_not_in_team(user: str, team: str) -> Decision:
    # Never says which team the user does belong to: the caller holds another team's key.
    return _deny(
        403,
        "user_not_in_team",
        f"user {user!r} is not a user of team {team or '(none)'}: this key may act only for "
        "users of its own team; nothing was reserved",
        reason="user_not_in_team",
        team=team or None,
        user=user,
    )


_CHECK_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def reservation_id_for(check_id: str | None) -> str:
    """The reservation id of a Check: derived from Envoy's per-request CHECK_ID_HEADER (a UUID
    Envoy writes over any client value), so every attempt of a retried Check names the same
    reservation; a fresh random one without it (a caller that is not the rendered Envoy)."""
    if check_id is not None and _CHECK_ID.match(check_id):
        return "r_" + hashlib.sha256(check_id.encode()).hexdigest()[:24]
    return "r_" + uuid.uuid4().hex[:24]


class Admission:
    def __init__(
        self,
        cfg: Config,
        keyring: KeyRing,
        prices: PriceTable,
        wallets: WalletService,
        holds: Holds | None = None,
        signer: ReservationSigner | None = None,
    ) -> None:
        self._cfg = cfg
        # Signs every reservation the Check hands out; the access-log consumer verifies it
        # with the same signer (build_app gives both the same one).
        self._signer = signer or signer_from_config(cfg)
        self._keys = keyring
        self._prices = prices
        self._wallets = wallets
        self._ttl_ms = cfg.enforcement.reservation_ttl_seconds * 1000
        # Cost tickets for `hold`; None: a `hold` policy answers a plain 402.
        self._holds = holds
        # Answer before Envoy's ext_authz timeout, so the client gets our JSON 503, not Envoy's.
        self._reserve_deadline = cfg.gateway.check_timeout_seconds * 0.75
        self._compensations: set[asyncio.Task[None]] = set()
        self._reserved_wait = cfg.enforcement.wait_for_reserved_seconds
        # The caller's key, and the user tokens and verified claims of jwt_authn: none of them
        # is the provider's business.
        self._remove_headers = (
            *CALLER_KEY_HEADERS,
            CHECK_ID_HEADER,
            *(h for i in cfg.jwt_issuers for h in (i.token_header, i.claim_header)),
        )

    def _compensate(self, reservation_id: str) -> None:
        """Release a reservation whose Check gave up, in the background (never on the Check)."""
        task = asyncio.get_running_loop().create_task(self._release_abandoned(reservation_id))
        self._compensations.add(task)
        task.add_done_callback(self._compensations.discard)

    async def _release_abandoned(self, reservation_id: str, attempts: int = 8) -> None:
        delay = 0.1
        for _ in range(attempts):
            try:
                await self._wallets.release(reservation_id, "check_abandoned", abandoned=True)
                return
            except StoreUnavailable:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        # Still unreachable: the sweeper settles it at its estimate after the TTL.
        m.STORE_ERRORS.labels("release_abandoned").inc()

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait for pending compensating releases (graceful shutdown)."""
        if self._compensations:
            await asyncio.wait(set(self._compensations), timeout=timeout)

    def _provider_for(self, api: ApiKind, model: str) -> Provider | None:
        wanted = "anthropic" if api == "anthropic_messages" else "openai"
        for p in self._cfg.providers:
            if p.kind == wanted and any(fnmatch.fnmatchcase(model, pat) for pat in p.models):
                return p
        return None

    async def decide(
        self, path: str, headers: Mapping[str, str], body: bytes, method: str = "POST"
    ) -> Decision:
        group = self._keys.lookup(presented_key(headers))
        if group is None:
            # Same answer for a missing and a wrong key: nothing to probe.
            return _deny(401, "invalid_api_key", "missing or invalid API key")
        if (free := free_path(path)) is not None:
            return self._free_endpoint(group, free, method, headers, body)
        api = api_kind(path)
        if api is None:
            return _deny(
                404,
                "unsupported_endpoint",
                "this gateway serves the OpenAI and Anthropic APIs only",
            )
        if method != "POST":
            # Other methods on these paths read or delete the org's stored objects upstream.
            denial = _deny(
                405, "method_not_allowed", f"{method} is not allowed here; LLM requests are POST"
            )
            denial.response_headers["allow"] = "POST"
            return denial
        try:
            parsed = parse_request(api, body, headers.get(ANTHROPIC_BETA_HEADER, ""))
        except RequestError as exc:
            bad_body = _deny(exc.status, exc.code, exc.message)
            if bad_body.body is not None:
                bad_body.body["error"].update(exc.extra)  # e.g. the key named twice
            return bad_body
        # Routing before pricing: a model no provider serves is refused for that, not for a
        # missing price (which only matters once a provider would be called).
        provider = self._provider_for(api, parsed.model)
        if provider is None:
            return _deny(400, "no_provider", f"no provider serves model {parsed.model!r}")
        try:
            priced = self._prices.resolve(parsed.model)
        except UnknownModel:
            return _deny(
                400, "unknown_model", f"model {parsed.model!r} has no price; ask an operator"
            )
        if group.allowed_models is not None and not any(
            fnmatch.fnmatchcase(name, pattern)
            for pattern in group.allowed_models
            for name in (parsed.model, priced.name)
        ):
            return _deny(
                403, "model_not_allowed", f"model {parsed.model!r} is not allowed for this group"
            )
        # Only what is charged needs a bound: with cost tracking off nothing is refused for it.
        refusal = (
            unbounded_refusal(self._cfg, group, parsed, priced)
            if self._cfg.cost_tracking.enabled
            else None
        )
        if refusal is not None:
            return _deny(refusal.status, refusal.code, refusal.message)
        user = headers.get(self._cfg.user_header_for(group))
        if group.user_source == "jwt" and not user:
            # jwt_authn verified no token for this group's issuer (missing, expired, wrong
            # issuer/audience or signature) or its claim was empty: no user, no spending.
            issuer = self._cfg.jwt_issuer(group.jwt_issuer or "")
            return _deny(
                401,
                "invalid_user_token",
                f"this key's requests need a user token: a JWT from {issuer.issuer} in the "
                f"{issuer.token_header} header (missing, expired or not verified)",
            )
        if user is not None and not _USER_ID.match(user):
            return _deny(
                400, "invalid_user", "the user header must be 1-128 characters [A-Za-z0-9_.@-]"
            )
        decision = await self._reserve(
            group,
            user,
            provider,
            parsed,
            priced,
            reservation_id_for(headers.get(CHECK_ID_HEADER)),
            headers.get(TICKET_HEADER),
        )
        if decision.allowed and AUTHZ_RESERVATION_ID in decision.metadata:
            # Without this signature the access log can neither settle nor release it.
            self._signer.sign(decision.metadata)
        return decision

    def _free_endpoint(
        self,
        group: ConsumerGroup,
        path: str,
        method: str,
        headers: Mapping[str, str],
        body: bytes,
    ) -> Decision:
        """A free read-only endpoint (gateway/free_endpoints.py): the key authenticates, the
        request passes to the provider without a reservation; nothing is charged or recorded."""
        allowed_method = FREE_PATHS[path]
        if method != allowed_method:
            denial = _deny(
                405, "method_not_allowed", f"{method} is not allowed here; use {allowed_method}"
            )
            denial.response_headers["allow"] = allowed_method
            return denial
        kind = free_kind(path, "anthropic-version" in headers)
        meta: dict[str, str | bool] = {
            "consumer_group": group.name,
            "team": group.wallet_team_id or "",
            "api": kind,
            "free": True,
        }
        if kind == "anthropic_count_tokens":
            model = count_tokens_model(body)
            if model is None:
                return _deny(400, "invalid_request", "the body must be a JSON object with a model")
            if group.allowed_models is not None and not any(
                fnmatch.fnmatchcase(model, pattern) for pattern in group.allowed_models
            ):
                return _deny(
                    403, "model_not_allowed", f"model {model!r} is not allowed for this group"
                )
            provider = self._provider_for("anthropic_messages", model)
            if provider is None:
                return _deny(400, "no_provider", f"no provider serves model {model!r}")
            meta[AUTHZ_MODEL] = model
        else:
            wanted = "anthropic" if kind == "anthropic_models" else "openai"
            provider = next((p for p in self._cfg.providers if p.kind == wanted), None)
            if provider is None:
                return _deny(400, "no_provider", f"no {wanted} provider is configured")
            if group.allowed_models is not None:
                meta[AUTHZ_MODELS_FILTER] = models_filter(group.allowed_models)
        meta["provider"] = provider.name
        return Decision(
            "allow",
            "free_endpoint",
            upstream_headers={PROVIDER_HEADER: provider.name},
            remove_headers=self._remove_headers,  # the same set as the LLM path
            metadata=meta,
        )

    async def _reserve(
        self,
        group: ConsumerGroup,
        user: str | None,
        provider: Provider,
        parsed: ParsedRequest,
        priced: ResolvedModel,
        reservation_id: str,
        ticket: str | None = None,
    ) -> Decision:
        team = member_team(group)  # the reservation's team: the only team whose users it reaches
        headers = {
            PROVIDER_HEADER: provider.name,
            TEAM_HEADER: team or "org",
        }
        meta: dict[str, str | bool] = {
            # The reserve's owners (ReserveRequest below), signed with the reservation.
            AUTHZ_GROUP: group.name,
            AUTHZ_TEAM: team,
            AUTHZ_USER: user or "",
            AUTHZ_MODEL: parsed.model,
            AUTHZ_PRICED_MODEL: priced.name,
            "api": parsed.api,
            "provider": provider.name,
            "stream": parsed.stream,
        }
        allow = Decision(
            "allow",
            "ok",
            upstream_headers=headers,
            # The caller's key never goes upstream; Envoy injects the provider's own credential
            # on the provider cluster (render-envoy), so the Check never carries it.
            remove_headers=self._remove_headers,
            metadata=meta,
        )
        if not self._cfg.cost_tracking.enabled:
            return allow
        _, allowance = self._cfg.unbounded_for(group)
        enforcement = self._cfg.enforcement
        tier = requested_tier(parsed.service_tier, provider)
        if tier != parsed.service_tier:
            parsed = replace(parsed, service_tier=tier)
        estimate = reservation_micros(parsed, priced, self._prices, enforcement, allowance)
        input_bound, _ = reservation_tokens(parsed, priced, enforcement, allowance)
        if parsed.service_tier is not None:
            meta[AUTHZ_SERVICE_TIER] = parsed.service_tier
        meta[AUTHZ_INPUT_BOUND_TOKENS] = str(input_bound)
        meta[AUTHZ_OUTPUT_BOUNDED] = not (parsed.reasoning or priced.price.hidden_reasoning)
        meta[AUTHZ_EXTRA_OUTPUT_TOKENS] = str(parsed.extra_output_tokens)
        cascade = cascade_for(self._cfg, group, user)
        enforcing = self._cfg.cost_tracking.wallet_enforcement
        policy = self._cfg.policy_for(group) if enforcing else "showback"
        request = ReserveRequest(
            reservation_id=reservation_id,
            candidates=cascade.candidates,
            amount=estimate,
            policy=policy,
            overdraft_wallet=cascade.overdraft,
            ttl_ms=self._ttl_ms,
            team=team,
            group=group.name,
            user=user or "",
            model=priced.name,
        )
        started = asyncio.get_running_loop().time()
        try:
            # asyncio.timeout, not wait_for: the same deadline without a Task per Check.
            async with asyncio.timeout(self._reserve_deadline):
                result = await self._wallets.reserve(request)
        except StoreRegressed:
            # Fail closed whatever `on_store_error` says: the books in the store are not ours.
            m.STORE_ERRORS.labels("reserve_regressed").inc()
            return _store_regressed()
        except (StoreUnavailable, TimeoutError):
            m.STORE_ERRORS.labels("reserve").inc()
            if self._cfg.enforcement.on_store_error == "allow":
                # If the reserve did land, the access log settles it like any other.
                allow.reason = "store_unavailable_allowed"
                allow.metadata.update({AUTHZ_RESERVATION_ID: request.reservation_id})
                allow.metadata["unreserved"] = True
                return allow
            # The script may have run although its answer never came: undo it, or the sweeper
            # would charge a refused request its estimate.
            self._compensate(request.reservation_id)
            return _deny(
                503, "store_unavailable", "the wallet store is unreachable; retry shortly", "error"
            )
        except asyncio.CancelledError:  # Envoy gave up on this Check
            self._compensate(request.reservation_id)
            raise
        if result.outcome == "foreign_user":
            return _user_not_in_team(request.user, team)
        if result.outcome == "hold" and self._holds is not None:
            return await self._hold(self._holds, allow, request, team, ticket)
        if self._may_wait_for_reserved(result, request):
            assert self._holds is not None
            return await self._wait_for_reserved(self._holds, allow, result, request, team, started)
        return self._after_reserve(allow, result, request, team)

    # ---------------------------------------------- block: wait for reserved money (issue 11/6)

    def _may_wait_for_reserved(self, result: ReserveResult, req: ReserveRequest) -> bool:
        """A `block` refusal where money is still reserved in a cascade wallet: worth a wait.
        (`seen` holds only what is available; Holds.wait_for_reserved reads the reserved part.)"""
        return (
            result.outcome == "blocked"
            and req.policy == "block"
            and self._reserved_wait > 0
            and self._holds is not None
            and bool(result.seen)
        )

    async def _wait_for_reserved(
        self,
        holds: Holds,
        allow: Decision,
        first: ReserveResult,
        req: ReserveRequest,
        team: str,
        started: float,
    ) -> Decision:
        """Wait (wallets.holds, on the settle wake-ups) for in-flight reservations to refund the
        wallet, then reserve; 402 once the money is really spent or the wait runs out. Bounded so
        the Check answers inside Envoy's timeout (check timeout + this wait, render-envoy); the
        wait itself stays out of the Check-latency histogram (Decision.hold_wait_seconds)."""
        loop = asyncio.get_running_loop()
        budget = started + self._reserve_deadline + self._reserved_wait - loop.time()
        waited_from = loop.time()
        try:
            outcome = await asyncio.wait_for(
                holds.wait_for_reserved(req, self._reserved_wait), max(budget, 0.001)
            )
        except StoreRegressed:
            return _store_regressed()
        except (StoreUnavailable, TimeoutError):
            # A reserve inside the wait may have landed without its answer: undo it.
            self._compensate(req.reservation_id)
            decision = self._after_reserve(allow, first, req, team)
            decision.hold_wait_seconds = loop.time() - waited_from
            m.RESERVED_WAIT.labels("reserved_wait_timeout").observe(decision.hold_wait_seconds)
            return decision
        except asyncio.CancelledError:  # Envoy gave up on this Check
            self._compensate(req.reservation_id)
            raise
        m.RESERVED_WAIT.labels(outcome.reason).observe(outcome.waited)
        decision = self._after_reserve(allow, outcome.result or first, req, team)
        if outcome.proceeds:
            decision.reason = outcome.reason
        decision.hold_wait_seconds = outcome.waited
        return decision

    async def _hold(
        self, holds: Holds, allow: Decision, req: ReserveRequest, team: str, ticket: str | None
    ) -> Decision:
        """`hold`: wait on a cost ticket (wallets.holds) until funds arrive or it is decided."""
        m.HELD_REQUESTS.inc()
        try:
            outcome = await holds.resolve(req, ticket)
        except StoreRegressed:
            return _store_regressed()
        except StoreUnavailable:
            return _deny(
                503, "store_unavailable", "the wallet store is unreachable; retry shortly", "error"
            )
        finally:
            m.HELD_REQUESTS.dec()
        if outcome.waited > 0:
            m.HOLD_WAIT.labels(outcome.reason).observe(outcome.waited)
        if outcome.proceeds:
            assert outcome.request is not None and outcome.result is not None
            decision = self._after_reserve(allow, outcome.result, outcome.request, team)
            decision.reason = outcome.reason
            decision.response_headers[TICKET_HEADER] = outcome.ticket_id
            decision.metadata["ticket_id"] = outcome.ticket_id
            decision.hold_wait_seconds = outcome.waited
            return decision
        denial = _deny(
            402,
            "insufficient_funds",
            f"insufficient funds for team {team or '(none)'}: this request needs up to "
            f"{format_micros(req.amount)} {self._cfg.organization.currency}; a cost ticket "
            f"was {'denied' if outcome.reason == 'hold_denied' else 'not approved in time'}: "
            f"retry with the header {TICKET_HEADER}: {outcome.ticket_id} once it is approved",
            "hold",
            reason=outcome.reason,
            team=team or None,
            ticket_id=outcome.ticket_id,
            requested=format_micros(req.amount),
            currency=self._cfg.organization.currency,
        )
        denial.response_headers[TICKET_HEADER] = outcome.ticket_id
        denial.response_headers["retry-after"] = str(outcome.retry_after)
        denial.hold_wait_seconds = outcome.waited
        return denial

    def _after_reserve(
        self, allow: Decision, result: ReserveResult, req: ReserveRequest, team: str
    ) -> Decision:
        currency = self._cfg.organization.currency
        if result.outcome in ("reserved", "overdraft", "duplicate"):
            allow.upstream_headers[RESERVATION_HEADER] = req.reservation_id
            allow.metadata.update(
                {
                    AUTHZ_RESERVATION_ID: req.reservation_id,
                    AUTHZ_WALLET: result.wallet or "",
                    AUTHZ_ESTIMATE_MICROS: str(req.amount),
                }
            )
            if result.outcome == "overdraft" and req.policy == "warn":
                allow.decision = "warn"
                allow.reason = "insufficient_funds_warn"
                allow.response_headers[WARNING_HEADER] = (
                    f"insufficient funds: charged to {result.wallet} as overdraft"
                )
            elif result.outcome == "overdraft":
                allow.reason = "showback"
            return allow
        available = max(result.seen.values(), default=0)
        reason = "insufficient_funds" if result.outcome == "blocked" else "hold_unavailable"
        # SDKs show only error.message: it alone says who cannot pay how much.
        return _deny(
            402,
            "insufficient_funds",
            f"insufficient funds for team {team or '(none)'}: "
            f"{format_micros(available)} {currency} available, this request needs up to "
            f"{format_micros(req.amount)} {currency} (its worst-case cost)",
            "hold" if result.outcome == "hold" else "block",
            reason=reason,
            team=team or None,
            wallet=req.candidates[-1] if req.candidates else None,
            wallets={w: format_micros(v) for w, v in result.seen.items()},
            available=format_micros(available),
            requested=format_micros(req.amount),
            currency=currency,
        )
