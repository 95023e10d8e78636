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
    return report
