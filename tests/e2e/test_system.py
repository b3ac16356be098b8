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
from tests.ports import free_port
from tests.processes import stop

ROOT = Path(__file__).parents[2]
HCP = Path(sys.executable).with_name("hcp")
pytestmark = pytest.mark.e2e
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


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
    stop(running.process)


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


@SQLITE_ONLY
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


def hcp(platform: Platform, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**platform.env, "HCP_URL": platform.url, "COLUMNS": "200"}
    return subprocess.run([str(HCP), *args], env=env, capture_output=True, text=True, timeout=60)


@SQLITE_ONLY
def test_cli_submits_lists_shows_and_cancels(platform: Platform) -> None:
    submitted = hcp(
        platform, "workloads", "submit", "ai_training", "--gpu-count", "2", "--hours", "3"
    )
    assert submitted.returncode == 0, submitted.stderr
    workload_id, status = submitted.stdout.split()[:2]
    assert status == "queued"

    listed = hcp(platform, "workloads", "list")
    assert listed.returncode == 0, listed.stderr
    assert workload_id in listed.stdout
    total = int(listed.stdout.split()[-1])
    paged = hcp(platform, "workloads", "list", "--limit", "1", "--offset", str(total - 1))
    assert paged.stdout.split()[-3:] == [f"{total}-{total}", "of", str(total)], paged.stdout
    beyond = hcp(platform, "workloads", "list", "--offset", str(total)).stdout.split()
    assert beyond[-3:] == ["none", "of", str(total)]

    shown = hcp(platform, "workloads", "show", workload_id)
    assert json.loads(shown.stdout)["requirements"]["gpu_count"] == 2

    cancelled = hcp(platform, "workloads", "cancel", workload_id)
    assert cancelled.stdout.split() == [workload_id, "cancelled"]


@SQLITE_ONLY
def test_cli_reports_api_errors_clearly(platform: Platform) -> None:
    too_many = hcp(platform, "workloads", "submit", "ai_training", "--gpu-count", "500")
    assert too_many.returncode == 1
    assert "422" in too_many.stderr and "gpu_count" in too_many.stderr
    missing = hcp(platform, "workloads", "show", "no-such-id")
    assert missing.returncode == 1 and "404" in missing.stderr
    bad_key = hcp(platform, "workloads", "list", "--key", "hcp_wrong")
    assert bad_key.returncode == 1 and "401" in bad_key.stderr


def test_cli_version_and_db_upgrade(tmp_path: Path) -> None:
    env = {**os.environ, "HCP_VAR_DIR": str(tmp_path / "var")}
    version = subprocess.run([str(HCP), "version"], capture_output=True, text=True, env=env)
    assert version.stdout.strip() == "0.1.0"
    python = HCP.parent / "python"
    as_module = subprocess.run(
        [str(python), "-m", "hcp", "version"], capture_output=True, text=True
    )
    assert as_module.stdout.strip() == "0.1.0", as_module.stderr
    upgraded = subprocess.run([str(HCP), "db", "upgrade"], capture_output=True, text=True, env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert (tmp_path / "var" / "hcp.db").exists()
    bad = subprocess.run(
        [str(HCP), "db", "upgrade"],
        capture_output=True,
        text=True,
        env={**env, "HCP_PORT": "not-a-port"},
    )
    assert bad.returncode == 2 and "port" in bad.stderr


def test_cli_manages_customers_users_and_keys(tmp_path: Path) -> None:
    env = {**os.environ, "HCP_VAR_DIR": str(tmp_path / "var"), "COLUMNS": "200"}

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(HCP), *args], env={**env, **extra}, capture_output=True, text=True, timeout=60
        )

    assert run("db", "upgrade").returncode == 0
    assert run("customers", "create", "acme", "--name", "Acme").stdout.split()[0] == "acme"
    quota = run("customers", "set", "acme", "--weight", "3", "--gpu-quota", "8")
    assert "weight 3  GPU quota 8" in quota.stdout, quota.stderr
    rows = [line.split("│") for line in run("customers", "list").stdout.splitlines()]
    cells = [[cell.strip() for cell in row[1:-1]] for row in rows if len(row) > 2]
    assert [c[:4] for c in cells if c[0] == "acme"] == [["acme", "Acme", "3", "8"]]
    assert "no GPU quota" in run("customers", "set", "acme", "--no-gpu-quota").stdout
    refused = run("customers", "set", "acme", "--gpu-quota", "0")
    assert refused.returncode == 1 and "gpu_quota" in refused.stderr
    assert run("customers", "set", "acme").returncode == 2  # nothing to change
    user = run(
        "users",
        "create",
        "--email",
        "ops@acme.example",
        "--role",
        "customer",
        "--customer",
        "acme",
        HCP_NEW_USER_PASSWORD="a long password",
    )
    assert user.returncode == 0, user.stderr
    created = run("keys", "create", "--name", "ci", "--customer", "acme")
    key_id, secret = created.stdout.split()
    assert secret.startswith("hcp_") and "not shown again" in created.stderr
    listed = run("keys", "list")
    assert key_id in listed.stdout and secret not in listed.stdout
    assert run("keys", "revoke", key_id).returncode == 0
    assert "revoked" in run("keys", "revoke", key_id).stdout  # idempotent
    wrong = run(
        "users",
        "create",
        "--email",
        "x@acme.example",
        "--role",
        "customer",
        HCP_NEW_USER_PASSWORD="a long password",
    )
    assert wrong.returncode == 1 and "customer_id" in wrong.stderr


@SQLITE_ONLY
def test_no_secret_reaches_the_log(platform: Platform, tmp_path: Path) -> None:
    keys = json.loads((platform.var_dir / "demo-keys.json").read_text())
    httpx.get(
        f"{platform.url}/api/v1/queue/depth", headers={"Authorization": f"Bearer {keys['admin']}"}
    )
    log = (tmp_path / "hcp.log").read_text()
    for name in ("admin", "customer", "admin_password", "customer_password"):
        # stdout shows each secret once, on first start, by design; stderr logging never does
        assert log.count(keys[name]) <= 1, name


def test_up_on_a_taken_port_names_it_and_writes_nothing(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "HCP_PORT": str(port), "HCP_VAR_DIR": str(tmp_path / "var")}
        result = subprocess.run(
            [str(HCP), "up"], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT
        )
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "in use" in result.stderr
    assert not (tmp_path / "var" / "hcp.db").exists()  # it stopped before migrating


def test_up_with_a_bad_devices_file_names_it_and_writes_nothing(tmp_path: Path) -> None:
    devices = tmp_path / "devices.toml"
    devices.write_text('[asics]\naddresses = ["10.0.0.1"]\n')
    env = {
        **os.environ,
        "HCP_PORT": str(free_port()),
        "HCP_VAR_DIR": str(tmp_path / "var"),
        "HCP_DEVICES_FILE": str(devices),
    }
    result = subprocess.run(
        [str(HCP), "up"], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"hcp: {devices}:2: asics.addresses: expected 'host:port'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "var" / "hcp.db").exists()
