"""`make bench-fleet`: the fleet benchmarks of issue 4 in one JSON object.

Runs, each as its own process so one cannot slow the next through leftovers:
- scripts/bench_curtail.py: curtail 10,000 (and 100,000) simulated miners over real TCP,
  confirmed by telemetry, against a naive one-at-a-time baseline;
- scripts/bench_ingest.py: telemetry ingest into the embedded store against plain sqlite3;
- scripts/bench_tick.py: one control-loop tick with 10,000 miners and 1,000 GPUs against the
  same tick with no devices.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent


def run(script: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / script), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    start = done.stdout.find("{")  # one JSON object, on one line or pretty-printed
    if done.returncode != 0 or start < 0:
        return {"error": f"{script} exited {done.returncode}: {done.stderr.strip()[-500:]}"}
    parsed: dict[str, Any] = json.loads(done.stdout[start:])
    return parsed


def main() -> None:
    curtail = run("bench_curtail.py")
    ingest = run("bench_ingest.py")
    tick = run("bench_tick.py")
    print(
        json.dumps(
            {
                "curtail_10k_seconds": curtail.get("curtail_10k_seconds"),
                "curtail_10k_configuration": curtail.get("curtail_10k_configuration"),
                "curtail_10k_one_process_seconds": curtail.get("curtail_10k_one_process_seconds"),
                "curtail_100k_seconds": curtail.get("curtail_100k_seconds"),
                "ingest_samples_per_s": ingest.get("ingest_samples_per_s"),
                "tick_seconds": tick.get("tick_seconds"),
                "curtail": curtail,
                "ingest": ingest,
                "tick": tick,
            }
        )
    )


if __name__ == "__main__":
    main()
