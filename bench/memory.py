"""Part 4: peak RSS of ``kasparro etl run --source csv`` on a generated CSV (50 MB; --full 1 GB)."""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil
from tests.fakes.data import KAGGLE_HEADER

from bench import common, payloads

MB = 1 << 20


def write_csv(path: Path, target_bytes: int) -> int:
    """Stream Kaggle-layout history rows (2,000 coins, one row per coin per day) until the size is reached."""
    world = payloads.world(2000)
    rows = 0
    day = world[0].updated_at
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(KAGGLE_HEADER)
        while handle.tell() < target_bytes:
            stamp = f"{day.date()} 23:59:59"
            for sno, coin in enumerate(world, start=1):
                price = coin.price * (1 + (rows % 97) / 1000)
                writer.writerow([
                    sno, coin.name, coin.symbol, stamp, price * 1.01, price * 0.99, price,
                    price * 1.001, coin.volume_24h, price * (coin.circulating_supply or 0.0),
                ])  # fmt: skip
                rows += 1
            day -= timedelta(days=1)
    return rows


class RssSampler:
    """Samples the RSS of a process and its children every ``interval`` seconds, from outside."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = time.monotonic()

    def _rss(self) -> int:
        total = 0
        for proc in [self.process, *self.process.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic() - self._started, self._rss()))
            except psutil.Error:
                return
            self._stop.wait(self.interval)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join()
        values = [rss for _, rss in self.samples] or [0]
        return {
            "peak_mb": round(max(values) / MB, 1),
            "samples": len(values),
            "by_quarter_peak_mb": [round(peak / MB, 1) for peak in quarter_peaks(values)],
        }


def quarter_peaks(values: list[int]) -> list[int]:
    """The highest value in each quarter of ``values``; the four spans cover every sample, the
    last ones included (a run's peak can be there)."""
    n = len(values)
    return [max(values[n * k // 4 : n * (k + 1) // 4] or [0]) for k in range(4)]


def ingest_file(csv_path: Path, db_url: str) -> dict[str, Any]:
    env = {
        **os.environ,
        "KASPARRO_DATABASE_URL": db_url,
        "KASPARRO_CSV_PATH": str(csv_path),
        "KASPARRO_SOURCES": "csv",
        "KASPARRO_LOG_LEVEL": "WARNING",
    }
    kasparro = str(Path(sys.executable).with_name("kasparro"))
    started = time.perf_counter()
    child = subprocess.Popen(
        [kasparro, "etl", "run", "--source", "csv"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=common.ROOT,
    )
    sampler = RssSampler(child.pid).start()
    _, stderr = child.communicate()
    memory = sampler.stop()
    seconds = time.perf_counter() - started
    return {
        "exit_code": child.returncode,
        "seconds": round(seconds, 1),
        "stderr_tail": stderr.decode(errors="replace")[-500:] if child.returncode else "",
        **memory,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="bench.memory")
    parser.add_argument("--quick", action="store_true", help="a 20 MB file")
    parser.add_argument("--full", action="store_true", help="the issue's 1 GB file")
    parser.add_argument("--mb", type=int, help="file size in MB (overrides --quick)")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args(argv)
    # 50 MB by default so that `make bench` fits in 10 minutes at today's CSV rate; --full: 1 GB
    size_mb = args.mb or (20 if args.quick else 1024 if args.full else 50)
    common.WORK.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(dir=common.WORK) as tmp,
        common.databases([args.db]) as templates,
    ):
        path = Path(tmp) / "big.csv"
        t0 = time.perf_counter()
        rows = write_csv(path, size_mb * MB)
        file_mb = round(path.stat().st_size / MB, 1)
        print(f"[memory] wrote {file_mb} MB ({rows:,} rows) in {time.perf_counter() - t0:.1f}s")
        url = templates[args.db].fresh()
        run = ingest_file(path, url)
        templates[args.db].drop(url)
    run.update(
        {
            "db": args.db,
            "file_mb": file_mb,
            "rows": rows,
            "rows_per_s": round(rows / run["seconds"]),
        }
    )
    print(
        f"[memory] {args.db}: peak RSS {run['peak_mb']} MB for a {file_mb} MB file "
        f"({rows:,} rows in {run['seconds']}s, exit {run['exit_code']}); per quarter {run['by_quarter_peak_mb']}"
    )
    previous = common.read_result("memory") or {}
    run["date"] = common.now_utc()
    run["machine"] = common.machine()
    flags = argv if argv is not None else sys.argv[1:]  # run alone: its own command line
    run["command"] = "python -m bench.run_all memory" + (" " + " ".join(flags) if flags else "")
    result = with_run(previous, run)
    common.write_result("memory", result)
    return result


def with_run(previous: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """The stored memory results with ``run`` in: one CSV run per (DB, file size), so the 1 GB
    run (--full) stays beside the default 50 MB one; the API's peak RSS (part 3) keeps its own
    date and machine."""
    runs = {(r["db"], round(r["file_mb"])): r for r in previous.get("csv_runs", [])}
    runs[(run["db"], round(run["file_mb"]))] = run
    api: dict[str, Any] = {
        k: previous[k] for k in ("api", "api_date", "api_machine") if k in previous
    }
    return {
        "csv_runs": sorted(runs.values(), key=lambda r: (r["db"], r["file_mb"])),
        **api,
        "command": run["command"],
    }


if __name__ == "__main__":
    main()
