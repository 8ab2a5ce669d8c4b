"""Part 2: one ETL pass against a local upstream that enforces the real rate limits and latency."""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.fakes import FakeUpstream

from bench import common, payloads
from kasparro.config import Settings
from kasparro.db.engine import make_engine, upgrade_schema
from kasparro.pipeline.runner import run_pass

SOURCES = ["coinpaprika", "coingecko"]
PAPRIKA_PER_SECOND, GECKO_PER_MINUTE = 10, 30


def floor_seconds(settings: Settings, requests: dict[str, int], *, sequential: bool) -> float:
    """The sum of the minimum inter-request delays each source must keep (per source), combined
    as the pass runs them: added up when sequential, the slowest source when concurrent."""
    per_source = {
        "coinpaprika": max(0, requests["coinpaprika"] - 1) * settings.coinpaprika_min_interval,
        "coingecko": max(0, requests["coingecko"] - 1) * settings.coingecko_min_interval,
    }
    return sum(per_source.values()) if sequential else max(per_source.values())


def one_pass(
    top_n: int, *, sequential: bool, gecko_interval: float | None, workdir: Path
) -> dict[str, Any]:
    world = payloads.world(top_n)
    url = f"sqlite:///{workdir / f'pass_{top_n}_{int(sequential)}_{gecko_interval}.db'}"
    engine = make_engine(url)
    upgrade_schema(engine)
    with FakeUpstream(world, latency=(0.05, 0.2)) as upstream:
        upstream.enforce_limits(PAPRIKA_PER_SECOND, GECKO_PER_MINUTE)
        overrides: dict[str, Any] = {
            "database_url": url, "top_n": top_n, "sources": SOURCES, "sequential": sequential,
            "coinpaprika_base_url": upstream.coinpaprika_url,
            "coingecko_base_url": upstream.coingecko_url, "log_level": "ERROR",
        }  # fmt: skip
        if gecko_interval is not None:
            overrides["coingecko_min_interval"] = gecko_interval
        settings = Settings(_env_file=None, **overrides)
        started = time.perf_counter()
        results = run_pass(settings, engine, trigger="bench")
        wall = time.perf_counter() - started
        requests = {s: len(upstream.requests(source=s)) for s in SOURCES}
        served_429 = dict(upstream.served_429)
    engine.dispose()
    return {
        "top_n": top_n,
        "mode": "sequential" if sequential else "concurrent",
        "coingecko_min_interval": settings.coingecko_min_interval,
        "coinpaprika_min_interval": settings.coinpaprika_min_interval,
        "wall_seconds": round(wall, 2),
        "requests": requests,
        "requests_total": sum(requests.values()),
        "served_429": {s: served_429.get(s, 0) for s in SOURCES},
        "served_429_total": sum(served_429.values()),
        "statuses": {r.source: r.status for r in results},
        "loaded": {r.source: r.loaded for r in results},
        "floor_seconds": round(floor_seconds(settings, requests, sequential=sequential), 2),
        "gecko_pages": math.ceil(top_n / settings.coingecko_per_page),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="bench.passes")
    parser.add_argument("--quick", action="store_true", help="top 50 and 250 only")
    parser.add_argument("--full", action="store_true", help="also top 10,000 (40 CoinGecko pages)")
    args = parser.parse_args(argv)
    sizes = [50, 250] if args.quick else [50, 250, 1000, 5000]
    rows: list[dict[str, Any]] = []
    common.WORK.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=common.WORK) as tmp:
        for top_n in sizes:
            for sequential in (False, True):
                row = one_pass(top_n, sequential=sequential, gecko_interval=None, workdir=Path(tmp))
                rows.append(row)
                print(_line(row))
        if args.full:
            for interval in (None, 2.0):  # over 30 pages: 1.5 s spacing exceeds 30/min
                row = one_pass(10_000, sequential=False, gecko_interval=interval, workdir=Path(tmp))
                rows.append(row)
                print(_line(row))
    result = {"rows": rows, "command": "python -m bench.run_all passes" + _args(argv)}
    common.write_result("passes", result)
    return result


def _args(argv: list[str] | None) -> str:
    return (" " + " ".join(argv)) if argv else ""


def _line(row: dict[str, Any]) -> str:
    return (
        f"[passes] top {row['top_n']:>6,} {row['mode']:10} gecko every {row['coingecko_min_interval']}s: "
        f"{row['wall_seconds']:>6.2f}s wall, floor {row['floor_seconds']:.2f}s, "
        f"{row['requests_total']} requests, 429s={row['served_429_total']} {row['statuses']}"
    )


if __name__ == "__main__":
    main()
