"""DCGM-exporter text for a simulated node: the families, HELP texts, label set and number format
that dcgm-exporter prints (names and HELP texts from its default counters CSV; labels in the
order of its GPU metrics template; doubles printed with six decimals, integers bare).
A lost GPU is absent, as on a real node whose GPU fell off the bus.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hcp.domain.gpu_telemetry import GpuHealth
from hcp.simulators.gpu.node import GpuSample

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# What DCGM reports for a field it cannot read (DCGM_INT64_BLANK + 2, "not supported").
DCGM_INT64_NOT_SUPPORTED = 0x7FFFFFFFFFFFFFF2


def _integer(value: float | None) -> str:
    return str(DCGM_INT64_NOT_SUPPORTED if value is None else round(value))


def _double(value: float | None) -> str:
    return str(DCGM_INT64_NOT_SUPPORTED) if value is None else f"{value:f}"


@dataclass(frozen=True, slots=True)
class _Family:
    name: str
    help: str
    value: Callable[[GpuSample], str]


FAMILIES: tuple[_Family, ...] = (
    _Family("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C).", lambda s: _integer(s.temp_c)),
    _Family("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).", lambda s: _double(s.power_w)),
    _Family("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", lambda s: _integer(s.util_pct)),
    _Family(
        "DCGM_FI_DEV_XID_ERRORS",
        "Value of the last XID error encountered.",
        lambda s: _integer(s.last_xid),
    ),
    _Family(
        "DCGM_FI_DEV_FB_FREE",
        "Framebuffer memory free (in MiB).",
        lambda s: _integer(s.fb_free_mib),
    ),
    _Family(
        "DCGM_FI_DEV_FB_USED",
        "Framebuffer memory used (in MiB).",
        lambda s: _integer(s.fb_used_mib),
    ),
)


@dataclass(frozen=True, slots=True)
class NodeLabels:
    """The per-node label values: hostname, model name and driver version."""

    hostname: str
    model_name: str
    driver_version: str


def render_metrics(node: NodeLabels, samples: Sequence[GpuSample]) -> str:
    """The `/metrics` body for `samples`: every family with its HELP and TYPE, then one line
    per GPU on the bus."""
    present = [s for s in samples if s.health is not GpuHealth.LOST]
    labels = {s.index: _labels(node, s) for s in present}
    lines: list[str] = []
    for family in FAMILIES:
        lines.append(f"# HELP {family.name} {family.help}")
        lines.append(f"# TYPE {family.name} gauge")
        lines.extend(f"{family.name}{{{labels[s.index]}}} {family.value(s)}" for s in present)
    return "\n".join(lines) + "\n"


def _labels(node: NodeLabels, sample: GpuSample) -> str:
    pairs = (
        ("gpu", str(sample.index)),
        ("UUID", sample.uuid),
        ("pci_bus_id", sample.pci_bus_id),
        ("device", f"nvidia{sample.index}"),
        ("modelName", node.model_name),
        ("Hostname", node.hostname),
        ("DCGM_FI_DRIVER_VERSION", node.driver_version),
    )
    return ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)


def _escape(value: str) -> str:
    """Escape a label value as the Prometheus text format requires (backslash, quote, newline)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
