"""Prometheus metrics: request counters, plus gauges read from the platform at scrape time."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from hcp.domain.devices import DeviceKind
from hcp.domain.status import UNREACHABLE
from hcp.domain.telemetry import MinerState
from hcp.economics import snapshot_hashprice
from hcp.services.platform import Platform

log = logging.getLogger(__name__)

DEVICE_STATES: dict[DeviceKind, tuple[str, ...]] = {
    DeviceKind.ASIC: (*(state.value for state in MinerState), UNREACHABLE),
    DeviceKind.GPU: ("busy", "idle", UNREACHABLE),  # as `hcp.domain.status.gpu_status` says
}
"""Every state a device of each kind can be in: each is reported, 0 when no device is in it
(a series that vanishes at 0 reads as "no data" in Prometheus, not as none)."""


class PlatformCollector(Collector):
    """Queue depth, fleet by state and the market, read fresh on every scrape."""

    def __init__(self, platform: Platform) -> None:
        self._platform = platform

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            yield from self._queue()
            yield from self._fleet()
            yield from self._market()
            yield from self._telemetry()
        except Exception:  # a failing read must not break the whole scrape
            log.exception("metrics collection failed")

    def _queue(self) -> Iterator[GaugeMetricFamily]:
        depth = self._platform.workloads.queue_depth()
        queued = GaugeMetricFamily("hcp_queue_depth", "Queued workloads", labels=["priority"])
        for priority, count in depth.by_priority.items():
            queued.add_metric([str(priority)], count)
        yield queued
        yield GaugeMetricFamily(
            "hcp_gpu_utilization_pct", "GPUs in use, percent", value=depth.utilization_pct
        )

    def _fleet(self) -> Iterator[GaugeMetricFamily]:
        devices = GaugeMetricFamily(
            "hcp_devices", "Devices by kind and state", labels=["kind", "state"]
        )
        power = GaugeMetricFamily(
            "hcp_fleet_power_w", "Last reported wall power, W", labels=["kind"]
        )
        maintenance = GaugeMetricFamily(
            "hcp_devices_in_maintenance", "Devices put in maintenance by staff", labels=["kind"]
        )
        counts = {(k.value, state): 0 for k, states in DEVICE_STATES.items() for state in states}
        watts = {kind.value: 0.0 for kind in DeviceKind}
        held = dict.fromkeys(watts, 0)
        hashrate = 0.0
        for d in self._platform.fleet.devices():
            counts[d.kind.value, d.state] = counts.get((d.kind.value, d.state), 0) + 1
            watts[d.kind.value] += d.power_w
            held[d.kind.value] += d.in_maintenance
            hashrate += d.hashrate_ths
        for (kind, state), n in sorted(counts.items()):
            devices.add_metric([kind, state], n)
        for kind, w in sorted(watts.items()):
            power.add_metric([kind], w)
            maintenance.add_metric([kind], held[kind])
        yield devices
        yield power
        yield maintenance
        yield GaugeMetricFamily("hcp_fleet_hashrate_ths", "Fleet hashrate, TH/s", value=hashrate)

    def _market(self) -> Iterator[GaugeMetricFamily]:
        snapshot, site = self._platform.market.current()
        yield GaugeMetricFamily(
            "hcp_market_electricity_usd_per_mwh",
            "Real-time electricity price at the site node",
            value=snapshot.electricity(site.node),
        )
        yield GaugeMetricFamily("hcp_market_btc_usd", "Bitcoin price", value=snapshot.btc_usd)
        yield GaugeMetricFamily(
            "hcp_market_hashprice_usd_per_th_day", "Hashprice", value=snapshot_hashprice(snapshot)
        )
        yield GaugeMetricFamily(
            "hcp_market_gpu_spot_usd_per_gpu_hour",
            "H100 spot rental price",
            value=snapshot.gpu_spot("H100"),
        )

    def _telemetry(self) -> Iterator[GaugeMetricFamily]:
        families: dict[str, GaugeMetricFamily] = {}
        for (device, metric), (_at, value) in sorted(self._platform.telemetry.current().items()):
            if metric not in families:
                families[metric] = GaugeMetricFamily(
                    f"hcp_device_{metric}",
                    f"{metric} per device, as its last poll measured it",
                    labels=["device"],
                )
            families[metric].add_metric([device], value)
        yield from families.values()


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "hcp_http_requests", "HTTP requests", ["method", "route", "status"], registry=registry
        )
        self.latency = Histogram(
            "hcp_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )
