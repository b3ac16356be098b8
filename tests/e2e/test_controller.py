"""`hcp controller` as subprocesses: one leads the site and runs its control loop, another stands
by and takes over when the leader is killed; `hcp up` will not run a second control loop for a
site another process controls."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import TEST_SECRET
from tests.e2e.test_system import HCP, ROOT
from tests.ports import free_port
from tests.processes import stop

pytestmark = pytest.mark.e2e
LEADS = "leads it now"
STANDS_BY = "standing by"


def environment(database_url: str, var_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HCP_VAR_DIR": str(var_dir),
        "HCP_DATABASE_URL": database_url,
        "HCP_ENV": "test",
        "HCP_SECRET_KEY": TEST_SECRET,
        "HCP_TICK_SECONDS": "1",
        "HCP_LEADER_CHECK_SECONDS": "0.5",
        "HCP_SITE_ASICS": "4",
        "HCP_SITE_GPUS": "8",
        "HCP_PORT": str(free_port()),
    }


@contextmanager
def controller(
    env: dict[str, str], log: Path, command: tuple[str, ...] = ("controller",)
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        process = subprocess.Popen([str(HCP), *command], env=env, stdout=out, stderr=out, cwd=ROOT)
    try:
        yield process
    finally:
        stop(process)


def wait_until(
    condition: Callable[[], bool], what: str, logs: list[Path], within_s: float = 60
) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            shown = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs if p.exists())
            pytest.fail(f"{what} did not happen within {within_s:g} s\n{shown}")
        time.sleep(0.1)


def says(log: Path, words: str) -> bool:
    return log.exists() and words in log.read_text()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_standby_controller_takes_over_when_the_leader_is_killed(
    database_url: str, tmp_path: Path
) -> None:
    engine = create_engine(database_url)

    def plans() -> int:
        with engine.connect() as connection:
            try:
                return int(connection.execute(text("SELECT count(*) FROM plans")).scalar_one())
            except Exception:  # not migrated yet
                return 0

    a_log, b_log = tmp_path / "a.log", tmp_path / "b.log"
    logs = [a_log, b_log]
    try:
        with controller(environment(database_url, tmp_path / "a"), a_log) as a:
            wait_until(lambda: says(a_log, LEADS) and plans() >= 2, "a leading and planning", logs)
            with controller(environment(database_url, tmp_path / "b"), b_log):
                wait_until(lambda: says(b_log, STANDS_BY), "b standing by", logs)
                before = plans()
                wait_until(lambda: plans() >= before + 2, "a planning on", logs)
                assert not says(b_log, LEADS)  # one control loop per site

                a.send_signal(signal.SIGKILL)
                a.wait()
                killed = plans()
                wait_until(lambda: says(b_log, LEADS), "b taking over", logs, within_s=30)
                wait_until(lambda: plans() >= killed + 2, "b planning", logs)
    finally:
        engine.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_hcp_up_will_not_control_a_site_a_controller_leads(
    database_url: str, tmp_path: Path
) -> None:
    env = environment(database_url, tmp_path / "var")
    log = tmp_path / "controller.log"
    with controller(env, log) as running:
        wait_until(lambda: says(log, LEADS), "the controller leading", [log])
        up = subprocess.run(
            [str(HCP), "up"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert up.returncode == 1, up.stderr
        assert "site site-west-1 is controlled by another process" in up.stderr
        assert "hcp api" in up.stderr  # and says what to run instead
        assert running.poll() is None
        running.send_signal(signal.SIGTERM)  # a service manager's stop: a clean exit
        assert running.wait(timeout=30) == 0


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_an_api_replica_shows_what_the_controller_does_in_its_platform_time(
    database_url: str, tmp_path: Path
) -> None:
    """`hcp api` beside `hcp controller --speed 60`: the replica runs no loop, yet shows the
    last dispatch the controller stored, and keeps the controller's platform time (an hour a
    wall minute), not the wall's."""
    env = {**environment(database_url, tmp_path / "var"), "HCP_TICK_SECONDS": "60"}
    api_env = {**env, "HCP_PORT": str(free_port())}
    c_log, api_log = tmp_path / "controller.log", tmp_path / "api.log"
    logs = [c_log, api_log]
    with controller(env, c_log, ("controller", "--speed", "60")):
        wait_until(lambda: says(c_log, LEADS), "the controller leading", logs)
        keys = tmp_path / "var" / "demo-keys.json"
        wait_until(keys.exists, "the demo keys", logs)
        admin = {"Authorization": f"Bearer {json.loads(keys.read_text())['admin']}"}
        with controller(api_env, api_log, ("api",)):
            url = f"http://127.0.0.1:{api_env['HCP_PORT']}"

            def get(path: str) -> httpx.Response | None:
                try:
                    return httpx.get(url + path, headers=admin, timeout=5)
                except httpx.TransportError:
                    return None  # not listening yet

            def answers(path: str) -> bool:
                response = get(path)
                return response is not None and response.status_code == 200

            wait_until(lambda: answers("/api/v1/dispatch/status"), "a dispatch status", logs)
            status = get("/api/v1/dispatch/status")
            assert status is not None and status.json()["site_id"] == "site-west-1"

            def prices_ahead_of_the_wall() -> bool:
                response = get("/api/v1/prices/current")
                if response is None or response.status_code != 200:
                    return False
                at = datetime.fromisoformat(response.json()["timestamp"])
                return at > datetime.now(UTC) + timedelta(minutes=3)

            # The replica's own idea of now decides which market interval is current: on the
            # wall clock it showed the first one for good.
            wait_until(prices_ahead_of_the_wall, "prices in platform time", logs)
