"""`hcp up` as a subprocess on a free port, and Debian's Chromium driven by Playwright.

Where /usr/bin/chromium is missing these tests skip with a message; in CI (CI set) they fail,
because `.ci/run` installs it. Every page a test visits is saved as a screenshot under
test-artifacts/screenshots/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.conftest import TEST_SECRET
from tests.ports import free_port
from tests.processes import stop

ROOT = Path(__file__).parents[2]
HCP = Path(sys.executable).with_name("hcp")
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SPEED = 60  # simulated seconds per wall second
TICK_SECONDS = 60  # simulated: one control tick per wall second at SPEED


def require_chromium() -> None:
    """Skip where Chromium is not installed; fail in CI, which must have it."""
    if not CHROMIUM.exists():
        message = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@dataclass(frozen=True)
class Site:
    """The running platform and what its first start wrote to demo-keys.json."""

    url: str
    keys: dict[str, str]

    def login(self, page: Page, who: str) -> None:
        page.goto(f"{self.url}/login")
        page.fill("input[name=email]", self.keys[f"{who}_email"])
        page.fill("input[name=password]", self.keys[f"{who}_password"])
        page.click("button[type=submit]")
        page.wait_for_url(f"{self.url}/dashboard")

    def api(self, method: str, path: str, body: dict[str, object]) -> httpx.Response:
        """Call the JSON API with the demo admin key."""
        headers = {"Authorization": f"Bearer {self.keys['admin']}"}
        return httpx.request(method, f"{self.url}{path}", json=body, headers=headers, timeout=10)


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"hcp up exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    pytest.fail(f"hcp up not ready within 30 s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    require_chromium()
    tmp = tmp_path_factory.mktemp("browser")
    port = free_port()
    env = {
        **os.environ,
        "HCP_PORT": str(port),
        "HCP_VAR_DIR": str(tmp / "var"),
        "HCP_ENV": "test",
        "HCP_SECRET_KEY": TEST_SECRET,
        "HCP_TICK_SECONDS": str(TICK_SECONDS),
        "HCP_POLL_SECONDS": "1",
    }
    env.pop("HCP_DATABASE_URL", None)
    log = tmp / "hcp.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(HCP), "up", "--speed", str(SPEED)], env=env, stdout=out, stderr=out, cwd=ROOT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, log)
        keys = json.loads((tmp / "var" / "demo-keys.json").read_text())
        yield Site(url, keys)
    finally:
        stop(process)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium for one test module: Playwright's sync API holds the main thread's event loop
    while it runs, so it must be stopped before any asyncio test elsewhere starts."""
    require_chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    yield opened
    context.close()


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2)
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    yield opened
    context.close()


def screenshot(page: Page, name: str) -> Path:
    """Save the whole page as test-artifacts/screenshots/NAME.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def publish(page: Page, name: str, target: Path) -> None:
    """A viewport-sized screenshot in the artifacts; copied over the docs' copy only when
    HCP_UPDATE_DOCS_SCREENSHOTS is set, so a test run leaves the work tree clean."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    if os.environ.get("HCP_UPDATE_DOCS_SCREENSHOTS"):
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
