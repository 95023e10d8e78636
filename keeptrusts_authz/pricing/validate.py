"""Checks that need the price table, beyond what the config model can validate on its own."""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from keeptrusts_authz.config.models import Config
from keeptrusts_authz.pricing.table import PriceTable, PricingError

_GLOB_CHARS = frozenset("*?[")


@dataclass
class PricingReport:
    """The table (None when it could not be built) and path-named errors and warnings."""

    table: PriceTable | None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def validate_pricing(cfg: Config) -> PricingReport:
    """Build the price table and check every group's `allowed_models` against it.

    An allowed model must resolve in the table (name, alias or dated snapshot); a glob pattern
    (`gpt-4o*`) must match at least one priced name. With `pricing.unknown_model: default` an
    unpriced allowed model is only a warning (it would be charged at the default model's price).
    """
    try:
        table = PriceTable.from_config(cfg)
    except PricingError as exc:
        return PricingReport(None, list(exc.errors))
    report = PricingReport(table)
    names = table.names_and_aliases()
    for i, group in enumerate(cfg.consumer_groups):
        for j, model in enumerate(group.allowed_models or []):
            path = f"consumer_groups[{i}].allowed_models[{j}]"
            if _GLOB_CHARS & set(model):
                if not any(fnmatchcase(n, model.lower()) for n in names):
                    report.errors.append(f"{path}: pattern {model!r} matches no priced model")
                continue
            if table.lookup(model) is not None:
                continue
            if cfg.pricing.unknown_model == "default":
                report.warnings.append(
                    f"{path}: model {model!r} is not in the price table; it will be charged "
                    f"as {cfg.pricing.default_model!r} (pricing.default_model)"
                )
            else:
                report.errors.append(
                    f"{path}: unknown model {model!r} (not in the price table; add it under "
                    "pricing.models)"
                )
    _check_unbounded(cfg, table, report)
    return report


def _check_unbounded(cfg: Config, table: PriceTable, report: PricingReport) -> None:
    """unbounded_inputs cross-checks: an allowance that is never used, and models whose
    server-side history nothing bounds (no context window, no server_history_tokens)."""
    for i, group in enumerate(cfg.consumer_groups):
        policy, _ = cfg.unbounded_for(group)
        if policy == "refuse" and group.unbounded_allowance_tokens is not None:
            report.warnings.append(
                f"consumer_groups[{i}].unbounded_allowance_tokens: unused, the group's "
                "unbounded_inputs policy is 'refuse'"
            )
    if cfg.enforcement.server_history_tokens is None:
        for name in table:
            if table.models[name].context_window is None:
                report.warnings.append(
                    f"{table.origin(name)}: no context_window and no "
                    "enforcement.server_history_tokens: a chained Responses request "
                    "(previous_response_id) on it is an unbounded input (refused unless the "
                    "group's unbounded_inputs is 'allowance')"
                )
