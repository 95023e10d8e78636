"""Model prices and request cost in integer micros (DESIGN section 2).

`PriceTable.from_config(cfg)` merges the shipped, dated `prices.yaml` with `pricing.models`;
`resolve(model)` maps names, aliases and dated snapshots to an entry or raises `UnknownModel`;
`cost_micros` (real cost) and `worst_case_micros` (the reservation estimate's price) compute
exact costs rounded up to 1 micro.
"""

from keeptrusts_authz.pricing.cost import (
    PROVIDER_DEFAULT_TIERS,
    Usage,
    cost_micros_for,
    output_bound_for,
)
from keeptrusts_authz.pricing.table import (
    DefaultPrices,
    PriceTable,
    PricingError,
    ResolvedModel,
    UnknownModel,
    load_default_prices,
)
from keeptrusts_authz.pricing.validate import PricingReport, validate_pricing

__all__ = [
    "PROVIDER_DEFAULT_TIERS",
    "DefaultPrices",
    "PriceTable",
    "PricingError",
    "PricingReport",
    "ResolvedModel",
    "UnknownModel",
    "Usage",
    "cost_micros_for",
    "load_default_prices",
    "output_bound_for",
    "validate_pricing",
]
