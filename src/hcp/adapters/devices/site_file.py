"""Where a site's devices answer when `hcp up` does not simulate them: real miners and GPU
nodes, or simulators run as their own processes (`hcp sim asic`, `hcp sim gpu`).

The file (`HCP_DEVICES_FILE`) is TOML; paths and errors as in the scenario files:

    [asics]                      # one address per stored miner, in the site's order
    host = "127.0.0.1"           # consecutive ports from first_port ...
    first_port = 14028
    # addresses = ["10.1.0.11:4028", "10.1.0.12:4028"]   # ... or every address listed

    [gpus]                       # each GPU node's DCGM exporter and node agent
    node_url = "http://127.0.0.1:9400/nodes/{node}"   # {node}: the node's name, e.g.
                                                      # site-west-1-gpu-node-001

A device that stops answering is marked unreachable by the fleet poll and left out of plans;
the platform itself keeps running (nothing of it lives in the devices' processes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hcp.domain.devices import DeviceKind
from hcp.domain.errors import DataError
from hcp.domain.fleet import Device
from hcp.tomlfile import TomlTable, load_toml

NODE = "{node}"


@dataclass(frozen=True, slots=True)
class SiteAddresses:
    """Where each device of a site answers: ASICs by device id, GPU nodes by a URL template
    whose `{node}` is the node's name (append `/metrics` or `/v1/...`)."""

    asics: dict[str, tuple[str, int]]
    node_url_template: str

    def node_url(self, host: str) -> str:
        return self.node_url_template.replace(NODE, host)


@dataclass(frozen=True, slots=True)
class DeviceFile:
    """A parsed devices file: the miners' addresses (listed, or consecutive ports on one host)
    and the GPU nodes' URL template."""

    path: Path
    asic_addresses: tuple[tuple[str, int], ...] | None
    asic_host: str
    asic_first_port: int
    node_url_template: str

    def miner_addresses(self, count: int) -> list[tuple[str, int]]:
        """The addresses of a site's `count` miners, in the site's order (DataError when the
        file cannot place that many)."""
        if self.asic_addresses is not None:
            if len(self.asic_addresses) != count:
                message = (
                    f"asics.addresses lists {len(self.asic_addresses)} miners; the site has {count}"
                )
                raise DataError(str(self.path), message)
            return list(self.asic_addresses)
        if self.asic_first_port + count - 1 > 65535:
            message = f"{count} miners from port {self.asic_first_port} run past 65535"
            raise DataError(str(self.path), f"asics.first_port: {message}")
        return [(self.asic_host, self.asic_first_port + i) for i in range(count)]


def load_device_file(path: Path) -> DeviceFile:
    """Parse `path`; DataError naming file, line and key on any problem."""
    if not path.is_file():
        raise DataError(str(path), "no such devices file (HCP_DEVICES_FILE)")
    root = load_toml(path)
    asics = root.table("asics") or TomlTable(path, {}, {}, "asics")
    listed = None
    if asics.has("addresses"):
        listed = tuple(_address(asics, a) for a in asics.get("addresses", list))
    host = asics.get("host", str, "127.0.0.1")
    first_port = asics.integer("first_port", 4028, minimum=1)
    if first_port > 65535:
        raise asics.error("first_port", f"must be a TCP port (1..65535), got {first_port}")
    asics.finish()
    gpus = root.table("gpus") or TomlTable(path, {}, {}, "gpus")
    template = gpus.get("node_url", str, "http://127.0.0.1:9400/nodes/{node}")
    if NODE not in template or not template.startswith(("http://", "https://")):
        message = f"expected an http(s) URL with {NODE} where the node's name goes"
        raise gpus.error("node_url", f"{message}, got {template!r}")
    gpus.finish()
    root.finish()
    return DeviceFile(path, listed, host, first_port, template.rstrip("/"))


def _address(table: TomlTable, value: object) -> tuple[str, int]:
    text = value if isinstance(value, str) else ""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise table.error("addresses", f"expected 'host:port', got {value!r}")
    return host.strip("[]"), int(port)


class ExternalSite:
    """The site's devices as a devices file places them: nothing to start or stop here."""

    def __init__(self, devices: Sequence[Device], file: DeviceFile) -> None:
        self._asics = [d for d in devices if d.kind is DeviceKind.ASIC]
        self._file = file

    async def start(self) -> SiteAddresses:
        """Each stored miner's address (DataError when a listed set does not match them)."""
        addresses = self._file.miner_addresses(len(self._asics))
        asics = {d.id: a for d, a in zip(self._asics, addresses, strict=True)}
        return SiteAddresses(asics, self._file.node_url_template)

    async def stop(self) -> None:
        """The devices run on without the platform."""
