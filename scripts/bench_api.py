"""`make bench-api`: durable POST /api/v1/workloads throughput against a bare baseline.

Starts `hcp up` (SQLite, the default) and a bare FastAPI + SQLite-insert app, each as its own
process, and drives each for the same fixed time with the same keep-alive load generator
(asyncio on raw sockets, so the client costs as little CPU as we can make it on this shared
2-core machine). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server at {url} exited with {process.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"server at {url} not ready in 60 s")


def request_bytes(port: int, path: str, body: bytes, token: str | None) -> bytes:
    headers = [
        f"POST {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    if token:
        headers.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


async def client(
    port: int, request: bytes, stop_at: float, latencies: list[float], errors: list[int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < stop_at:
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if status != 201:
                errors.append(status)
    finally:
        writer.close()


async def drive(port: int, request: bytes, seconds: float, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    errors: list[int] = []
    began = time.perf_counter()
    stop_at = began + seconds
    await asyncio.gather(
        *(client(port, request, stop_at, latencies, errors) for _ in range(concurrency))
    )
    elapsed = time.perf_counter() - began
    ms = sorted(x * 1000 for x in latencies)
    return {
        "requests_per_s": round((len(ms) - len(errors)) / elapsed, 1),
        "p50_ms": round(statistics.median(ms), 2),
        "p99_ms": round(ms[int(0.99 * (len(ms) - 1))], 2),
        "requests": len(ms),
        "errors": len(errors),
    }


def run_load(port: int, request: bytes, seconds: float, concurrency: int) -> dict[str, float]:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(drive(port, request, 1.0, concurrency))  # warm-up, not counted
    return asyncio.run(drive(port, request, seconds, concurrency))


def bench_hcp(work: Path, seconds: float, concurrency: int) -> dict[str, float]:
    port = free_port()
    env = {
        **os.environ,
        "HCP_PORT": str(port),
        "HCP_VAR_DIR": str(work / "var"),
        "HCP_LOG_LEVEL": "WARNING",
        # One key drives thousands of requests a second here; the per-key limit (50/s by
        # default) is an abuse guard, not part of what is measured.
        "HCP_RATE_LIMIT_PER_SECOND": "0",
    }
    process = subprocess.Popen(
        [str(BIN / "hcp"), "up"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/health", process)
        token = json.loads((work / "var" / "demo-keys.json").read_text())["customer"]
        body = json.dumps(
            {
                "workload_type": "ai_inference_batch",
                "requirements": {"gpu_type": "H100", "gpu_count": 1},
            }
        ).encode()
        return run_load(
            port, request_bytes(port, "/api/v1/workloads", body, token), seconds, concurrency
        )
    finally:
        process.terminate()
        process.wait(timeout=30)


def bench_baseline(work: Path, seconds: float, concurrency: int) -> dict[str, float]:
    port = free_port()
    env = {
        **os.environ,
        "BASELINE_DB": str(work / "baseline.db"),
        "PYTHONPATH": str(ROOT / "scripts"),
    }
    command = [
        str(BIN / "uvicorn"),
        "bench_baseline_app:app",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
    ]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/docs", process)
        body = json.dumps({"workload_type": "ai_inference_batch", "gpu_count": 1}).encode()
        return run_load(port, request_bytes(port, "/items", body, None), seconds, concurrency)
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hcp-bench-") as tmp:
        work = Path(tmp)
        hcp = bench_hcp(work, args.seconds, args.concurrency)
        baseline = bench_baseline(work, args.seconds, args.concurrency)
    result = {
        **{k: hcp[k] for k in ("requests_per_s", "p50_ms", "p99_ms", "errors")},
        "baseline_requests_per_s": baseline["requests_per_s"],
        "baseline_p99_ms": baseline["p99_ms"],
        "ratio": round(hcp["requests_per_s"] / baseline["requests_per_s"], 3),
        "requests": hcp["requests"],
        "seconds": args.seconds,
        "concurrency": args.concurrency,
        "database": "sqlite (WAL, synchronous=NORMAL)",
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
