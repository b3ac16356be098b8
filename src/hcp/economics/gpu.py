"""GPU compute: customer prices per workload class and the revenue of GPU-hours."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from hcp.domain.workloads import WorkloadClass


def gpu_revenue_usd(gpus: float, hours: float, price_usd_per_gpu_hour: float) -> float:
    """Revenue in USD of `gpus` GPUs for `hours` at `price_usd_per_gpu_hour`."""
    return gpus * hours * price_usd_per_gpu_hour


@dataclass(frozen=True, slots=True)
class GpuPriceSheet:
    """Customer list prices in USD per GPU-hour, by workload class and GPU family."""

    usd_per_gpu_hour: Mapping[WorkloadClass, Mapping[str, float]]

    def price(self, workload_class: WorkloadClass, family: str) -> float:
        """The list price in USD/GPU-hour; KeyError names the class, family and known families."""
        by_family = self.usd_per_gpu_hour.get(workload_class, {})
        try:
            return by_family[family]
        except KeyError:
            known = ", ".join(sorted(by_family))
            raise KeyError(
                f"no {workload_class.value} price for GPU family {family!r} (known: {known})"
            ) from None


# Assumption, not a quote: on-demand list prices seen across GPU clouds in 2024-2025.
# Realtime inference pays a premium for a latency SLA and for being served first; batch
# inference is deferrable and cheaper; training buys long blocks of hours at a volume discount.
DEFAULT_PRICE_SHEET = GpuPriceSheet(
    MappingProxyType(
        {
            WorkloadClass.AI_INFERENCE_REALTIME: {"H100": 4.00, "A100": 2.20, "L40S": 1.60},
            WorkloadClass.AI_INFERENCE_BATCH: {"H100": 2.75, "A100": 1.50, "L40S": 1.10},
            WorkloadClass.AI_TRAINING: {"H100": 2.25, "A100": 1.20, "L40S": 0.90},
        }
    )
)


def gpu_hour_value_usd(
    workload_class: WorkloadClass,
    family: str,
    sheet: GpuPriceSheet,
    spot_usd_per_gpu_hour: float,
) -> float:
    """Value in USD of one GPU-hour of `family` serving `workload_class`.

    It is the class's list price: a customer who has placed the workload pays it. A family the
    sheet does not list is valued at the spot price, the best market estimate we have for it.
    """
    try:
        return sheet.price(workload_class, family)
    except KeyError:
        return spot_usd_per_gpu_hour
