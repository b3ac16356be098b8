"""Stopping a process a test started: ask it to stop, then kill it if it will not."""

from __future__ import annotations

import subprocess


def stop(process: subprocess.Popen[str] | subprocess.Popen[bytes], timeout_s: float = 10) -> None:
    """SIGTERM, wait up to `timeout_s`, then SIGKILL; the process is reaped either way."""
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
