"""Spend and token counters by team, consumer group and model, read from Redis at scrape time.

settle.lua and expire.lua (the only ops that spend) HINCRBY the org's `usage` hash in the same
script as the ledger entry, so the counters can never disagree with the ledger and the hot path
pays nothing in Python for them (docs/ARCHITECTURE.md, "Usage counters"). The wallet collector
reads the hash with the wallet gauges (one pipelined round trip) and this module turns it into
`keeptrusts_spend_total`, `keeptrusts_tokens_total` and `keeptrusts_settled_requests_total`.

Every replica therefore reports the same org-wide totals (like the wallet gauges): aggregate them
with `max by (...)`, never `sum`, across replicas. Sums are kept as integer micros in Redis and
converted to currency units once, at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from prometheus_client.core import CounterMetricFamily

from keeptrusts_authz.money import MICROS_PER_UNIT

if TYPE_CHECKING:
    from keeptrusts_authz.config.models import Config
    from keeptrusts_authz.pricing import PriceTable

TOKEN_KINDS = ("input", "output", "cached")
OTHER = "other"
NONE = "none"
MAX_MODELS = 10_000  # memo of model name -> label; label cardinality stays bounded regardless


class UsageLabels:
    """Bounded label values: teams and groups from the config, models from the price table.

    Anything else (a model the table does not know, a team removed from the config) becomes
    `other`; an empty value (a group funded by the org without a team) becomes `none`.
    """

    def __init__(
        self,
        teams: Iterable[str],
        groups: Iterable[str],
        model_name: Callable[[str], str | None],
    ) -> None:
        self._teams = frozenset(teams)
        self._groups = frozenset(groups)
        self._model_name = model_name
        self._models: dict[str, str] = {}

    @classmethod
    def from_config(cls, cfg: Config, prices: PriceTable | None) -> UsageLabels:
        def model_name(model: str) -> str | None:
            if prices is None:
                return None
            hit = prices.lookup(model)
            return hit.name if hit is not None else None

        return cls(
            [g.wallet_team_id for g in cfg.consumer_groups if g.wallet_team_id],
            [g.name for g in cfg.consumer_groups],
            model_name,
        )

    @staticmethod
    def _bounded(value: str, allowed: frozenset[str]) -> str:
        if not value:
            return NONE
        return value if value in allowed else OTHER

    def team(self, value: str) -> str:
        return self._bounded(value, self._teams)

    def group(self, value: str) -> str:
        return self._bounded(value, self._groups)

    def model(self, value: str) -> str:
        if not value:
            return NONE
        if value == OTHER:
            return OTHER
        hit = self._models.get(value)
        if hit is None:
            hit = self._model_name(value) or OTHER
            if len(self._models) < MAX_MODELS:
                self._models[value] = hit
        return hit


SpendKey = tuple[str, str, str, str]  # team, consumer_group, model, estimated (true/false)
TokensKey = tuple[str, str, str, str]  # team, consumer_group, model, kind
RequestsKey = tuple[str, str, str]  # team, consumer_group, model
K = TypeVar("K")


@dataclass
class UsageTotals:
    """The `usage` hash folded onto bounded label values (fields that collapse onto the same
    labels, e.g. two teams no longer in the config -> `other`, are added up)."""

    spend: dict[SpendKey, int] = field(default_factory=dict)  # micros
    tokens: dict[TokensKey, int] = field(default_factory=dict)
    requests: dict[RequestsKey, int] = field(default_factory=dict)


def _add(into: dict[K, int], key: K, n: int) -> None:
    into[key] = into.get(key, 0) + n


def usage_totals(raw: Mapping[str, int], labels: UsageLabels) -> UsageTotals:
    """Parse the fields written by settle.lua / expire.lua (see store/observability.py):
    `spend|<team>|<group>|<0/1>|<model>`, `requests|<team>|<group>|<model>`,
    `tokens|<team>|<group>|<kind>|<model>`. The model label comes last, so it may hold `|`.
    Malformed fields are skipped (never exported as labels)."""
    out = UsageTotals()
    for name, value in raw.items():
        kind, _, rest = name.partition("|")
        if kind == "requests":
            parts = rest.split("|", 2)
            if len(parts) == 3:
                team, group, model = parts
                key = (labels.team(team), labels.group(group), labels.model(model))
                _add(out.requests, key, value)
        elif kind in ("spend", "tokens"):
            parts = rest.split("|", 3)
            if len(parts) != 4:
                continue
            team, group, sub, model = parts
            base = (labels.team(team), labels.group(group), labels.model(model))
            if kind == "spend" and sub in ("0", "1"):
                _add(out.spend, (*base, "true" if sub == "1" else "false"), value)
            elif kind == "tokens" and sub in TOKEN_KINDS:
                _add(out.tokens, (*base, sub), value)
    return out


def usage_families() -> tuple[CounterMetricFamily, CounterMetricFamily, CounterMetricFamily]:
    """The three (empty) counter families: spend, tokens, settled requests."""
    return (
        CounterMetricFamily(
            "keeptrusts_spend",
            "Settled spend (currency units) by team, consumer group, model and whether the cost "
            "was estimated (no usage reported, or expired). Org-wide: every replica reports the "
            "same value, aggregate with max.",
            labels=["team", "consumer_group", "model", "estimated"],
        ),
        CounterMetricFamily(
            "keeptrusts_tokens",
            "Tokens reported by providers for settled requests, by kind (input, output, cached). "
            "Org-wide: every replica reports the same value, aggregate with max.",
            labels=["team", "consumer_group", "model", "kind"],
        ),
        CounterMetricFamily(
            "keeptrusts_settled_requests",
            "Requests settled or expired (ledger spend entries) by team, consumer group, model. "
            "Org-wide: every replica reports the same value, aggregate with max.",
            labels=["team", "consumer_group", "model"],
        ),
    )


def add_usage(
    families: tuple[CounterMetricFamily, CounterMetricFamily, CounterMetricFamily],
    totals: UsageTotals,
) -> None:
    spend, tokens, requests = families
    for skey, micros in sorted(totals.spend.items()):
        spend.add_metric(list(skey), micros / MICROS_PER_UNIT)
    for tkey, n in sorted(totals.tokens.items()):
        tokens.add_metric(list(tkey), float(n))
    for rkey, n in sorted(totals.requests.items()):
        requests.add_metric(list(rkey), float(n))


__all__ = ["UsageLabels", "UsageTotals", "add_usage", "usage_families", "usage_totals"]
