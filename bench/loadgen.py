"""Load generation: wrk when available (installed once with apt-get if missing), else a multiprocess httpx loop."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
import shutil
import subprocess
import time
from typing import Any

import httpx

_tried_install = False


def wrk_path() -> str | None:
    global _tried_install
    found = shutil.which("wrk")
    if found is None and not _tried_install:
        _tried_install = True
        print("[api] wrk not found; trying `apt-get install -y wrk` once")
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(["apt-get", "install", "-y", "wrk"], capture_output=True, timeout=180)
        found = shutil.which("wrk")
    return found


def describe(pinned: bool) -> str:
    if not wrk_path():
        return "Python multiprocess httpx fallback (wrk unavailable)"
    if pinned:
        return "wrk 4 (1 thread on its own core beside a one-worker server, else 2 threads)"
    return "wrk 4 (2 threads)"


def can_pin() -> bool:
    """Whether a server and wrk can each get a core of their own here (``taskset``, 2+ cores)."""
    return (
        wrk_path() is not None
        and shutil.which("taskset") is not None
        and {0, 1} <= os.sched_getaffinity(0)
    )


def pinned(command: list[str], cpus: set[int] | None) -> list[str]:
    """``command`` confined to ``cpus`` (and its threads with it) by ``taskset``."""
    if not cpus:
        return command
    return ["taskset", "-c", ",".join(map(str, sorted(cpus))), *command]


def run(
    url: str,
    duration: float,
    connections: int,
    *,
    etag: str | None = None,
    cpus: set[int] | None = None,
) -> dict[str, Any]:
    """Load ``url``; with ``cpus``, the generator runs on those cores only (one wrk thread)."""
    wrk = wrk_path()
    if wrk:
        return _wrk(wrk, url, duration, connections, etag, cpus)
    return _python(url, duration, connections, etag)


def _ms(value: str, unit: str) -> float:
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]
    return round(float(value) * scale, 2)


def _wrk(
    wrk: str, url: str, duration: float, connections: int, etag: str | None, cpus: set[int] | None
) -> dict[str, Any]:
    threads = len(cpus) if cpus else 2
    command = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--latency",
    ]
    if etag:
        command += ["-H", f"If-None-Match: {etag}"]
    out = subprocess.run(
        pinned([*command, url], cpus), capture_output=True, text=True, timeout=duration + 60
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s|m)\b", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s|m)\b", out)
    total = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "requests_per_s": float(rps.group(1)) if rps else 0.0,
        "p50_ms": _ms(*p50.groups()) if p50 else None,
        "p99_ms": _ms(*p99.groups()) if p99 else None,
        "requests": int(total.group(1)) if total else 0,
        "errors": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": socket_errors.group(1).strip() if socket_errors else "",
    }


def _worker(args: tuple[str, float, int, str | None]) -> tuple[list[float], int]:
    url, duration, concurrency, etag = args
    import threading

    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + duration
    headers = {"If-None-Match": etag} if etag else {}

    def loop() -> None:
        with httpx.Client(timeout=30) as client:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                status = client.get(url, headers=headers).status_code
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    latencies.append(elapsed)
                    if status >= 400:
                        errors[0] += 1

    threads = [threading.Thread(target=loop) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors[0]


def _python(url: str, duration: float, connections: int, etag: str | None) -> dict[str, Any]:
    processes = 2
    per = max(1, connections // processes)
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        parts = pool.map(_worker, [(url, duration, per, etag)] * processes)
    latencies = sorted(x for part, _ in parts for x in part)
    errors = sum(e for _, e in parts)

    def pct(q: float) -> float | None:
        return (
            round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 2)
            if latencies
            else None
        )

    return {
        "requests_per_s": round(len(latencies) / duration, 1),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "requests": len(latencies),
        "errors": errors,
        "socket_errors": "",
    }
