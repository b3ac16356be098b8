"""`hcp up` as a subprocess: the seed's 11 checks over real HTTP, and durability across a kill."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_SECRET

ROOT = Path(__file__).parents[2]
HCP = Path(sys.executable).with_name("hcp")
pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Platform:
    url: str
    env: dict[str, str]
    var_dir: Path
    process: subprocess.Popen[bytes]

    def key(self, role: str) -> str:
        return str(json.loads((self.var_dir / "demo-keys.json").read_text())[role])


def start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        process = subprocess.Popen([str(HCP), "up"], env=env, stdout=out, stderr=out, cwd=ROOT)
    url = f"http://127.0.0.1:{env['HCP_PORT']}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"hcp up exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    pytest.fail(f"hcp up not ready within 30 s:\n{log.read_text()}")


@pytest.fixture
def platform(database_url: str, tmp_path: Path) -> Iterator[Platform]:
    port = free_port()
    env = {
        **os.environ,
        "HCP_PORT": str(port),
        "HCP_VAR_DIR": str(tmp_path / "var"),
        "HCP_DATABASE_URL": database_url,
        "HCP_ENV": "test",
        "HCP_SECRET_KEY": TEST_SECRET,
        "HCP_TICK_SECONDS": "1",
    }
    process = start(env, tmp_path / "hcp.log")
    running = Platform(f"http://127.0.0.1:{port}", env, tmp_path / "var", process)
    yield running
    running.process.terminate()
    try:
        running.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        running.process.kill()


def test_seed_system_test_passes_all_11_checks(platform: Platform) -> None:
    result = subprocess.run(
        [str(ROOT / "scripts" / "system-test.sh"), platform.url],
        env={**platform.env, "HCP_API_KEY": platform.key("customer")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "11 passed, 0 failed" in result.stdout
    assert result.stdout.count("✓ PASS") == 11


def test_keys_file_is_private_and_holds_working_keys(platform: Platform) -> None:
    path = platform.var_dir / "demo-keys.json"
    assert path.stat().st_mode & 0o777 == 0o600
    admin = {"Authorization": f"Bearer {platform.key('admin')}"}
    assert httpx.get(f"{platform.url}/api/v1/resources", headers=admin).json()["total"] == 60


def test_acknowledged_workloads_survive_a_kill(platform: Platform, tmp_path: Path) -> None:
    headers = {"Authorization": f"Bearer {platform.key('customer')}"}
    body = {"workload_type": "ai_training", "requirements": {"gpu_count": 2}}
    ids = [
        httpx.post(f"{platform.url}/api/v1/workloads", json=body, headers=headers).json()[
            "workload_id"
        ]
        for _ in range(20)
    ]
    platform.process.send_signal(signal.SIGKILL)
    platform.process.wait(timeout=10)

    platform.process = start(platform.env, tmp_path / "hcp-restart.log")
    listed = httpx.get(
        f"{platform.url}/api/v1/workloads", params={"limit": 100}, headers=headers
    ).json()
    assert {w["workload_id"] for w in listed["workloads"]} == set(ids)
    restart_log = (tmp_path / "hcp-restart.log").read_text()
    assert "First start" not in restart_log  # the keys were kept, not made anew
