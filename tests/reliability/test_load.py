"""Load: concurrent API clients against a real ``kasparro api`` process while ETL passes commit;
memory across many passes."""

from __future__ import annotations

import gc
import hashlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import orjson
import psutil
import pytest
from sqlalchemy import Engine

from kasparro.config import Settings
from kasparro.pipeline.runner import run_pass
from tests.fakes import FakeUpstream, advance, coins
from tests.reliability.helpers import cli_env, duplicates

WORLD = coins(40)
PATHS = ("/data?limit=50", "/stats", "/assets?limit=20", "/data?limit=5&sort=-market_cap_usd")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Client(threading.Thread):
    """Loops over PATHS; keeps latencies, statuses, and (path, data_version) -> content hash."""

    def __init__(self, base: str, stop: threading.Event, number: int) -> None:
        super().__init__(daemon=True)
        self.base, self.stop, self.number = base, stop, number
        self.latencies: list[float] = []
        self.statuses: list[int] = []
        self.backwards = 0
        self.seen: dict[tuple[str, int], str] = {}
        self.errors: list[str] = []

    def run(self) -> None:
        last_version = -1
        with httpx.Client(base_url=self.base, timeout=30) as http:
            i = self.number
            while not self.stop.is_set():
                path = PATHS[i % len(PATHS)]
                i += 1
                started = time.perf_counter()
                try:
                    response = http.get(path)
                except httpx.HTTPError as exc:
                    self.errors.append(repr(exc))
                    continue
                self.latencies.append(time.perf_counter() - started)
                self.statuses.append(response.status_code)
                if response.status_code != 200:
                    continue
                body = response.json()
                version = int(body.pop("meta")["data_version"])
                if version < last_version:
                    self.backwards += 1
                last_version = version
                digest = hashlib.sha1(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()  # noqa: S324
                self.seen.setdefault((path, version), digest)
                if self.seen[(path, version)] != digest:
                    self.errors.append(f"{path} at version {version} had two different contents")


@dataclass
class LoadResult:
    workers: list[Client]
    passes: int

    @property
    def statuses(self) -> list[int]:
        return [s for w in self.workers for s in w.statuses]

    @property
    def errors(self) -> list[str]:
        return [e for w in self.workers for e in w.errors]

    @property
    def versions(self) -> set[int]:
        return {v for w in self.workers for (_, v) in w.seen}

    def percentile(self, q: float) -> float:
        latencies = sorted(x for w in self.workers for x in w.latencies)
        return latencies[max(0, int(len(latencies) * q) - 1)]


def _load(
    settings: Settings,
    engine: Engine,
    upstream: FakeUpstream,
    *,
    seconds: float,
    clients: int,
    every: float,
    min_passes: int = 3,
) -> LoadResult:
    """Run ``clients`` against a real ``kasparro api`` process while passes commit, ``every`` s apart.

    The load lasts ``seconds`` and, on a slow or busy machine, longer: until ``min_passes`` passes
    have committed under it, starting no pass after four times ``seconds``. The caller asserts the
    pass count, so a pipeline that cannot commit ``min_passes`` passes in that time fails."""
    world = WORLD
    run_pass(settings, engine)
    port = _free_port()
    env = cli_env(
        settings,
        KASPARRO_DB_POOL_SIZE="20",
        KASPARRO_DATA_VERSION_TTL="0.2",
        KASPARRO_LOG_LEVEL="ERROR",
    )
    switch = sys.getswitchinterval()
    api = subprocess.Popen(
        [sys.executable, "-m", "kasparro", "api", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    stop = threading.Event()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health/live", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert api.poll() is None, "the API exited"
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.1)
        started = time.monotonic()
        until, cap = started + seconds, started + 4 * seconds
        # this process hosts the clients' threads, the fake upstream and the ETL; with the
        # default 5 ms switch interval the upstream's threads wait that long for the GIL at every
        # socket call while the clients parse responses, and one pass takes seconds
        sys.setswitchinterval(0.0005)
        workers = [Client(base, stop, n) for n in range(clients)]
        for worker in workers:
            worker.start()
        passes = 0

        def remaining() -> float:
            """Seconds of load left: to ``until``, or to ``cap`` while passes are still missing."""
            return (until if passes >= min_passes else cap) - time.monotonic()

        while remaining() > 0:
            world = advance(world, minutes=5, seed=passes)
            upstream.set_coins(world)
            results = run_pass(settings, engine)
            assert all(r.status == "success" for r in results), results
            passes += 1
            time.sleep(max(0.0, min(every, remaining())))
        stop.set()
        for worker in workers:
            worker.join(timeout=60)
    finally:
        stop.set()
        sys.setswitchinterval(switch)
        api.terminate()
        try:
            api.wait(timeout=30)
        except subprocess.TimeoutExpired:
            api.kill()
            api.wait()
    return LoadResult(workers, passes)


def _settings(make_settings: Callable[..., Settings], upstream: FakeUpstream) -> Settings:
    return make_settings(
        sources=["coinpaprika", "coingecko"],
        coinpaprika_base_url=upstream.coinpaprika_url,
        coingecko_base_url=upstream.coingecko_url,
        top_n=40,
        rate_limit_per_minute=0,  # one client process stands for many users here
    )


@pytest.mark.parametrize(
    ("seconds", "clients"),
    [
        pytest.param(10, 32, id="ci-10s-32-clients"),
        pytest.param(60, 200, id="soak-60s-200-clients", marks=pytest.mark.slow),
    ],
)
def test_api_under_load_while_passes_commit(
    make_settings: Callable[..., Settings], engine: Engine, seconds: int, clients: int
) -> None:
    with FakeUpstream(WORLD) as upstream:
        result = _load(
            _settings(make_settings, upstream),
            engine,
            upstream,
            seconds=seconds,
            clients=clients,
            every=0.5,  # the pause between passes; a pass under this load takes 1-3 s, more on a busy host
        )

    statuses = result.statuses
    print(
        f"\nload: {clients} clients x {seconds}s, {len(statuses)} requests, {result.passes} passes, "
        f"{len(result.versions)} data versions seen, p50 {result.percentile(0.5) * 1000:.1f} ms, "
        f"p99 {result.percentile(0.99) * 1000:.1f} ms"
    )
    assert result.passes >= 3
    assert [s for s in statuses if s >= 500] == []
    assert set(statuses) == {200}
    assert [
        e for e in result.errors if "two different contents" not in e
    ] == []  # no transport errors
    assert (
        sum(w.backwards for w in result.workers) == 0
    )  # data_version never goes backwards for a client
    assert len(result.versions) >= 2
    assert duplicates(engine) == {}


def test_same_data_version_always_means_same_content(
    make_settings: Callable[..., Settings], engine: Engine
) -> None:
    with FakeUpstream(WORLD) as upstream:
        result = _load(
            _settings(make_settings, upstream), engine, upstream, seconds=4, clients=8, every=0.2
        )
    assert result.passes >= 3
    assert result.errors == []


@pytest.mark.slow
def test_memory_stays_flat_across_1000_passes(
    make_settings: Callable[..., Settings], engine: Engine
) -> None:
    process = psutil.Process()
    world = coins(10)
    with FakeUpstream(world) as upstream:
        settings = make_settings(
            sources=["coinpaprika", "coingecko"],
            coinpaprika_base_url=upstream.coinpaprika_url,
            coingecko_base_url=upstream.coingecko_url,
            top_n=10,
        )
        rss: list[int] = []
        for number in range(1000):
            if number % 10 == 0:
                world = advance(world, minutes=5, seed=number)
                upstream.set_coins(world)
            run_pass(settings, engine, trigger="schedule")
            if number in (99, 999):
                gc.collect()
                rss.append(process.memory_info().rss)
    start, end = rss
    print(
        f"\nmemory: RSS after 100 passes {start / 2**20:.1f} MiB, after 1000 {end / 2**20:.1f} MiB"
    )
    assert end - start < 30 * 2**20
