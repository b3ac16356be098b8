"""Pure billing core: metering usage per workload and interval, prices, invoices (Decimal USD)."""

from hcp.billing.export import invoice_csv, usage_csv
from hcp.billing.invoicing import (
    Invoice,
    InvoiceLine,
    build_invoice,
    deduplicate,
    invoice_id,
    is_final,
    month_of,
    parse_month,
)
from hcp.billing.metering import (
    EnergySource,
    PowerSample,
    Run,
    UsageRecord,
    gpu_hours_between,
    held_energy_j,
    meter_interval,
    month_pieces,
)
from hcp.billing.prices import (
    DEFAULT_BILLING_SHEET,
    BillingPriceSheet,
    InterruptibleTerms,
    PriceChange,
    PriceHistory,
    Tier,
    catalog_gpu_power_kw,
    interruptible_price,
)
from hcp.billing.rounding import ROUNDING, round_money

__all__ = [
    "DEFAULT_BILLING_SHEET",
    "ROUNDING",
    "BillingPriceSheet",
    "EnergySource",
    "InterruptibleTerms",
    "Invoice",
    "InvoiceLine",
    "PowerSample",
    "PriceChange",
    "PriceHistory",
    "Run",
    "Tier",
    "UsageRecord",
    "build_invoice",
    "catalog_gpu_power_kw",
    "deduplicate",
    "gpu_hours_between",
    "held_energy_j",
    "interruptible_price",
    "invoice_csv",
    "invoice_id",
    "is_final",
    "meter_interval",
    "month_of",
    "month_pieces",
    "parse_month",
    "round_money",
    "usage_csv",
]
