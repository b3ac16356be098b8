"""DCGM-exporter scrape: a pure translator from its Prometheus text to `GpuReading`s, and an
async scraper that fetches many nodes' `/metrics` at once (bounded concurrency, timeouts).

The translator reads six families (utilisation %, power W, temperature °C, framebuffer used and
free MiB, last Xid) and skips every other line without parsing it. GPUs are told apart by their
`Hostname` and `gpu` labels; a node that prints no `Hostname` gets the scrape target's name.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType

import httpx

from hcp.adapters.clock import SystemClock
from hcp.adapters.devices.errors import DeviceError, DeviceIOError, MalformedReply
from hcp.adapters.devices.gpu_errors import check_served, transport_errors
from hcp.adapters.devices.node_agent import new_gpu_node_client, request_retrying_stale
from hcp.domain.gpu_telemetry import GpuReading
from hcp.services.ports import Clock

# DCGM field -> GpuReading attribute.
FIELDS: Mapping[str, str] = {
    "DCGM_FI_DEV_GPU_UTIL": "util_pct",
    "DCGM_FI_DEV_POWER_USAGE": "power_w",
    "DCGM_FI_DEV_GPU_TEMP": "temp_c",
    "DCGM_FI_DEV_FB_USED": "fb_used_mib",
    "DCGM_FI_DEV_FB_FREE": "fb_free_mib",
    "DCGM_FI_DEV_XID_ERRORS": "xid_errors",
}
_OPTIONAL = {"xid_errors": 0.0}  # an exporter configured without the Xid field: none seen
# DCGM writes "blank" sentinels (DCGM_INT32_BLANK = 0x7ffffff0 and the larger int64 and double
# blanks) for a value it cannot read; no real reading of these six fields gets that high.
DCGM_INT32_BLANK = 0x7FFFFFF0

_SAMPLE = re.compile(
    r"(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)(?:\{(?P<labels>.*)\})?[ \t]+(?P<value>\S+)(?:[ \t]+\S+)?"
)
_LABEL = re.compile(r'[ \t]*([A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*"((?:[^"\\]|\\.)*)"[ \t]*(?:,|$)')
_ESCAPE = re.compile(r"\\(.)")

_GpuKey = tuple[str, str]  # (Hostname, gpu label)


def parse_dcgm_metrics(text: str, *, host: str, at: datetime) -> list[GpuReading]:
    """The readings in one dcgm-exporter `/metrics` body, ordered by host and GPU index.

    `host` names the scrape target (in errors, and for GPUs without a `Hostname` label); `at` is
    stamped on every reading. MalformedReply for a line that is not Prometheus text, or a GPU
    that lacks one of the five required families.
    """
    values: dict[_GpuKey, dict[str, float]] = {}
    labels: dict[_GpuKey, dict[str, str]] = {}
    for name, sample_labels, value in _samples(text, host):
        key = (sample_labels.get("Hostname", host), sample_labels.get("gpu", ""))
        if not key[1].isdigit():
            raise MalformedReply(host, f"{name} sample without a numeric gpu label")
        labels.setdefault(key, {}).update(sample_labels)  # a family may carry fewer labels
        if value is not None:
            values.setdefault(key, {})[FIELDS[name]] = value
    readings = [_reading(host, key, labels[key], values.get(key, {}), at) for key in labels]
    return sorted(readings, key=lambda r: (r.host, r.gpu_index))


def _samples(text: str, host: str) -> Iterator[tuple[str, dict[str, str], float | None]]:
    """(family, labels, value or None for a blank) of each sample of the families we read."""
    for line_no, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        name = line.partition("{")[0].split(None, 1)[0] if line else ""
        if name not in FIELDS:
            continue  # comments, blank lines and the families we do not read
        match = _SAMPLE.fullmatch(line)
        if match is None:
            raise MalformedReply(host, f"line {line_no} is not a Prometheus sample: {line[:120]!r}")
        try:
            value = float(match["value"])
        except ValueError:
            raise MalformedReply(host, f"line {line_no}: bad value {match['value']!r}") from None
        blank = math.isnan(value) or value >= DCGM_INT32_BLANK
        yield name, _labels(host, line_no, match["labels"] or ""), None if blank else value


def _labels(host: str, line_no: int, text: str) -> dict[str, str]:
    """Parse `a="x",b="y"` (with the format's escapes) into a dict."""
    labels: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        match = _LABEL.match(text, pos)
        if match is None or match.end() == pos:
            raise MalformedReply(host, f"line {line_no}: bad label set {text[:120]!r}")
        labels[match[1]] = _ESCAPE.sub(lambda m: "\n" if m[1] == "n" else m[1], match[2])
        pos = match.end()
    return labels


def _reading(
    host: str, key: _GpuKey, labels: Mapping[str, str], values: Mapping[str, float], at: datetime
) -> GpuReading:
    """One GpuReading from a GPU's labels and field values; MalformedReply if a field is missing."""
    fields = {**_OPTIONAL, **values}
    missing = sorted(set(FIELDS.values()) - fields.keys())
    if missing:
        raise MalformedReply(host, f"{key[0]} gpu {key[1]} lacks {', '.join(missing)}")
    return GpuReading(
        host=key[0],
        gpu_index=int(key[1]),
        uuid=labels.get("UUID", labels.get("uuid", "")),
        model=labels.get("modelName", ""),
        at=at,
        util_pct=fields["util_pct"],
        power_w=fields["power_w"],
        temp_c=fields["temp_c"],
        fb_used_mib=round(fields["fb_used_mib"]),
        fb_free_mib=round(fields["fb_free_mib"]),
        xid_errors=round(fields["xid_errors"]),
    )


@dataclass(frozen=True, slots=True)
class DcgmTarget:
    """One exporter to scrape: the node's name and the full URL of its `/metrics`."""

    host: str
    url: str


@dataclass(frozen=True, slots=True)
class DcgmSweep:
    """One scrape of many nodes: every reading, and for each node that failed, why."""

    readings: tuple[GpuReading, ...]
    failures: Mapping[str, DeviceError]


class DcgmScraper:
    """Scrapes dcgm-exporter endpoints, at most `max_concurrency` at a time.

    Each request gets `timeout_s` (connect, read, write and pool). Pass one shared
    `httpx.AsyncClient` (a seam for tests, or to share a pool); without one the scraper opens
    its own and `aclose()` closes it, dropping idle connections after
    `node_agent.KEEPALIVE_EXPIRY_S` (before an exporter would: dcgm-exporter's is 10 s).

    A scrape that breaks because the exporter closed the reused idle connection is sent once
    more at once (`request_retrying_stale`): a GET of `/metrics` is safe to repeat, and a node
    is not reported unreachable for a keep-alive race.
    """

    def __init__(
        self,
        client: httpx.AsyncClient | None = None,
        *,
        timeout_s: float = 2.0,
        max_concurrency: int = 32,
        clock: Clock | None = None,
    ) -> None:
        self._owns_client = client is None
        self._client = client or new_gpu_node_client(
            max_connections=max_concurrency, max_keepalive_connections=None
        )
        self._timeout = httpx.Timeout(timeout_s)
        self._limiter = asyncio.Semaphore(max_concurrency)
        self._clock: Clock = clock or SystemClock()

    async def scrape(self, target: DcgmTarget) -> list[GpuReading]:
        """The readings of one node; a DeviceError subclass when it cannot be read."""
        async with self._limiter:
            with transport_errors(target.host):
                response = await request_retrying_stale(
                    self._client, "GET", target.url, timeout=self._timeout
                )
        check_served(target.host, response)
        if response.status_code != 200:
            raise DeviceIOError(target.host, f"HTTP {response.status_code} from {target.url}")
        return parse_dcgm_metrics(response.text, host=target.host, at=self._clock.now())

    async def scrape_all(self, targets: Iterable[DcgmTarget]) -> DcgmSweep:
        """Scrape every target concurrently; a failing node is reported, never raised."""
        targets = list(targets)
        results = await asyncio.gather(*(self._scrape_or_error(t) for t in targets))
        readings = [r for result in results if isinstance(result, list) for r in result]
        failures = {
            t.host: r for t, r in zip(targets, results, strict=True) if isinstance(r, DeviceError)
        }
        return DcgmSweep(tuple(readings), failures)

    async def _scrape_or_error(self, target: DcgmTarget) -> list[GpuReading] | DeviceError:
        try:
            return await self.scrape(target)
        except DeviceError as exc:
            return exc

    async def aclose(self) -> None:
        """Close the HTTP client if the scraper opened it."""
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> DcgmScraper:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
