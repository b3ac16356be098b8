"""`hcp sim asic` as a subprocess: it lists the addresses it really bound, and `--faults FILE`
injects faults that our LuxOS client then sees on the faulty miners and not on the healthy."""

from __future__ import annotations

import queue
import random
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from tests.processes import stop

from hcp.adapters.devices.errors import (
    DeviceConnectionReset,
    DeviceTimeout,
    DeviceUnreachable,
    MalformedReply,
)
from hcp.adapters.devices.luxos import LuxosClient, RetryPolicy
from hcp.domain.telemetry import MinerState

HCP = Path(sys.executable).with_name("hcp")
ONCE = RetryPolicy(attempts=1)
_HEADER = re.compile(r"^(\d+) simulated (.+) miners \(LuxOS RPC(?:, (\d+) offline)?\)")
_LINE = re.compile(r"^  miners? (\d+)(?:-(\d+))?: (.+)$")

Address = tuple[str, int]


@contextmanager
def simulator(*args: str) -> Iterator[tuple[str, list[Address | None]]]:
    """Run `hcp sim asic ARGS`; yield its header line and each miner's announced address
    (None for an offline one), then stop it."""
    process = subprocess.Popen(
        [str(HCP), "sim", "asic", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in process.stdout or ():
            lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        header = _next_line(process, lines)
        match = _HEADER.match(header)
        assert match is not None, f"unexpected announcement: {header!r}"
        places: list[Address | None] = []
        while len(places) < int(match[1]):
            places.extend(_places(_next_line(process, lines)))
        yield header, places
    finally:
        stop(process)
        reader.join(timeout=5)
        if process.stdout is not None:
            process.stdout.close()


def _next_line(process: subprocess.Popen[str], lines: queue.Queue[str]) -> str:
    try:
        return lines.get(timeout=30).rstrip("\n")
    except queue.Empty:
        pytest.fail(f"hcp sim asic printed nothing for 30 s (exit code {process.poll()})")


def _places(line: str) -> list[Address | None]:
    """The addresses of one announced run: `miners 0-2: 127.0.0.1:40001-40003`, ...`"""
    match = _LINE.match(line)
    assert match is not None, f"unexpected line: {line!r}"
    first = int(match[1])
    count = (int(match[2]) if match[2] else first) - first + 1
    where = match[3]
    if where.startswith("offline"):
        return [None] * count
    ips = re.fullmatch(r"([\d.]+)-([\d.]+), port (\d+)", where)
    if ips:
        return [_next_ip(ips[1], i) for i in range(count)]
    host, _, ports = where.rpartition(":")
    low = int(ports.split("-")[0])
    return [(host, low + i) for i in range(count)]


def _next_ip(first: str, step: int) -> Address:
    head, _, last = first.rpartition(".")
    return f"{head}.{int(last) + step}", 4028


def client(place: Address | None, timeout_s: float = 2.0) -> LuxosClient:
    assert place is not None
    return LuxosClient(*place, timeout_s=timeout_s, retry=ONCE)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "faults.toml"
    path.write_text(text)
    return path


async def test_first_port_0_lists_the_real_ports_and_faults_show_on_their_miners(
    tmp_path: Path,
) -> None:
    faults = write(
        tmp_path,
        "[1]\ndead_boards = 1\noverheating = true\n\n[2]\nmalformed_replies = true\n\n"
        "[3]\noffline = true\n",
    )
    args = ("--count", "4", "--first-port", "0", "--faults", str(faults))
    with simulator(*args) as (header, places):
        assert header.startswith("4 simulated S21 miners (LuxOS RPC, 1 offline)")
        assert places[3] is None
        assert all(place is not None and place[1] > 0 for place in places[:3])

        healthy = await client(places[0]).read()
        assert healthy.state is MinerState.MINING and healthy.healthy, healthy.problems
        assert healthy.hashrate_ths == pytest.approx(200.0, rel=0.05)

        degraded = await client(places[1]).read()
        assert degraded.state is MinerState.MINING and not degraded.healthy
        assert degraded.hashrate_ths == pytest.approx(200.0 * 2 / 3, rel=0.05)
        assert "board 2 dead" in degraded.problems
        assert any(p.startswith("overheating") for p in degraded.problems)

        with pytest.raises(MalformedReply):
            await client(places[2]).read()


async def test_offline_slow_and_resetting_miners_on_loopback_ips(tmp_path: Path) -> None:
    # A random 127.x.y.0/24, so parallel runs on one machine do not collide on port 4028.
    first_ip = f"127.{random.randint(64, 250)}.{random.randint(0, 250)}.1"
    faults = write(
        tmp_path,
        "[0-1]\noffline = true\n\n[2]\nreply_delay_s = 1.5\n\n[4]\nreset_connections = true\n",
    )
    args = ("--ips", "--first-ip", first_ip, "--count", "5", "--faults", str(faults))
    with simulator(*args) as (header, places):
        assert header.startswith("5 simulated S21 miners (LuxOS RPC, 2 offline)")
        assert places[:2] == [None, None]
        assert places[2:] == [_next_ip(first_ip, i) for i in range(2, 5)]

        with pytest.raises(DeviceUnreachable):  # offline: nothing listens on its IP
            await client((first_ip, 4028)).summary()
        with pytest.raises(DeviceTimeout):
            await client(places[2], timeout_s=0.3).summary()
        assert (await client(places[2], timeout_s=5.0).read()).healthy  # slow, not broken
        assert (await client(places[3]).read()).healthy
        with pytest.raises(DeviceConnectionReset):
            await client(places[4]).summary()


def test_a_port_already_taken_is_a_clear_error_not_a_traceback() -> None:
    with simulator("--count", "2", "--first-port", "0") as (_, places):
        assert places[0] is not None
        taken = places[0][1]
        result = subprocess.run(
            [str(HCP), "sim", "asic", "--count", "1", "--first-port", str(taken)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert result.stderr.startswith("hcp: cannot start the simulated miners:")
    assert "address already in use" in result.stderr and "Traceback" not in result.stderr
