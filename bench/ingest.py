"""Part 1: ingest throughput of the real path (``BaseIngestion.run``) against two baselines."""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import baselines, common, payloads
from bench.instrument import Recorder, instrumented, timed_batches
from kasparro.config import Settings
from kasparro.db.engine import make_engine
from kasparro.db.models import EtlCheckpoint
from kasparro.ingestion.base import BaseIngestion, FetchedBatch
from kasparro.ingestion.coingecko import CoinGeckoIngestion
from kasparro.ingestion.coinpaprika import CoinPaprikaIngestion
from kasparro.ingestion.csv_source import CsvIngestion

SOURCES = ("coingecko", "coinpaprika", "csv")
GECKO_PAGE = 250  # CoinGecko's real page size: one FetchedBatch per page


class BenchGecko(CoinGeckoIngestion):
    """The real CoinGecko source; only ``fetch`` is replaced, to replay pre-generated pages. As
    the real client does before each page request, it commits what is open first."""

    records: list[Any] = []

    def fetch(self, checkpoint: EtlCheckpoint | None) -> Iterator[FetchedBatch]:
        for start in range(0, len(self.records), GECKO_PAGE):
            self.commit_before_waiting()
            yield FetchedBatch(self.records[start : start + GECKO_PAGE])


class BenchPaprika(CoinPaprikaIngestion):
    """The real CoinPaprika source; ``fetch`` replays one /tickers body in batch_size slices."""

    records: list[Any] = []

    def fetch(self, checkpoint: EtlCheckpoint | None) -> Iterator[FetchedBatch]:
        self.commit_before_waiting()  # the one /tickers request
        size = self.settings.batch_size
        for start in range(0, len(self.records), size):
            yield FetchedBatch(self.records[start : start + size])


class TimedCsv(CsvIngestion):
    """The real CSV source, its parsing charged to fetch/parse."""

    recorder: Recorder | None = None

    def fetch(self, checkpoint: EtlCheckpoint | None) -> Iterator[FetchedBatch]:
        batches = super().fetch(checkpoint)
        return timed_batches(self.recorder, batches) if self.recorder else batches


def make_source(source: str, settings: Settings, engine: Any, data: Any) -> BaseIngestion:
    if source == "csv":
        return TimedCsv(settings.model_copy(update={"csv_path": data}), engine)
    cls = BenchGecko if source == "coingecko" else BenchPaprika
    ingestion = cls(settings, engine)
    ingestion.records = data
    return ingestion


def bench_settings(url: str) -> Settings:
    return Settings(database_url=url, log_level="ERROR", _env_file=None)


def run_once(
    source: str,
    url: str,
    data: Any,
    *,
    recorder: Recorder | None = None,
    time_cap: float | None = None,
) -> tuple[float, Any]:
    """Run the real ingestion; with ``time_cap``, its stop event is set after that many seconds
    (the run ends "interrupted" after the batch in flight, and only what it fetched counts)."""
    settings = bench_settings(url)
    engine = make_engine(url)
    stop = threading.Event()
    timer = threading.Timer(time_cap, stop.set) if time_cap else None
    try:
        ingestion = make_source(source, settings, engine, data)
        ingestion.stop = stop
        if recorder is not None and isinstance(ingestion, TimedCsv):
            ingestion.recorder = recorder
        if timer:
            timer.start()
        started = time.perf_counter()
        result = ingestion.run(trigger="bench")
        # timed too: on SQLite, disposing waits for the background WAL checkpoint to finish, so
        # the figure includes getting every page into the database file (as the ceiling's does)
        engine.dispose()
        elapsed = time.perf_counter() - started
    finally:
        if timer:
            timer.cancel()
        engine.dispose()
    if result.status == "interrupted" and stop.is_set() and time_cap:
        return elapsed, result
    if result.status not in ("success", "partial"):
        raise RuntimeError(f"{source} bench run ended {result.status}: {result.error}")
    return elapsed, result


class Dataset:
    """Pre-generated inputs for one (source, size): the full batch and the half already present."""

    def __init__(self, source: str, n: int, workdir: Path) -> None:
        self.source, self.n, self.workdir = source, n, workdir
        self._half: Any = None
        if source == "csv":
            self.full: Any = workdir / f"history_{n}.csv"
            self.rows = payloads.history_csv(self.full, n)
        else:
            self.full = payloads.payloads(source, payloads.world(n))
            self.rows = n

    @property
    def half(self) -> Any:
        """What is "already present": half the coins with an older ``last_updated``, or every
        other row of the CSV file (made on first use)."""
        if self._half is None:
            if self.source == "csv":
                self._half = self.workdir / f"history_{self.n}_half.csv"
                payloads.history_csv(self._half, self.n, every_other=True)
            else:
                world = payloads.world(self.n // 2, payloads.EARLIER)
                self._half = payloads.payloads(self.source, world)
        return self._half


def measure(
    dataset: Dataset, db: str, template: Any, present: int, literal_cap: int, time_cap: float
) -> dict[str, Any]:
    url = template.fresh()
    try:
        if present:
            run_once(dataset.source, url, dataset.half)
        recorder = Recorder(capture=True)
        with instrumented(recorder):
            seconds, result = run_once(
                dataset.source, url, dataset.full, recorder=recorder, time_cap=time_cap
            )
        capped = result.status == "interrupted"
        n = result.fetched if capped else dataset.rows
        row: dict[str, Any] = {
            "source": dataset.source, "db": db, "records": dataset.rows, "present_pct": present,
            "capped": capped, "records_done": n,
            "seconds": round(seconds, 3), "records_per_s": round(n / seconds),
            "loaded": result.loaded, "unchanged": result.unchanged,
            "quarantined": result.quarantined, "stages": recorder.split(seconds),
        }  # fmt: skip
    finally:
        template.drop(url)
    ceiling = baselines.ceiling(db, template, recorder.rows)
    row["ceiling_seconds"] = round(ceiling, 3)
    row["ceiling_records_per_s"] = round(n / ceiling) if ceiling else None
    row["ratio_to_ceiling"] = round(ceiling / seconds, 3) if ceiling else None
    # the same load committed per batch, as Kasparro commits: what durability per batch costs
    batched = baselines.ceiling(
        db, template, recorder.rows, commit_every=bench_settings(url).batch_size
    )
    row["batched_ceiling_records_per_s"] = round(n / batched) if batched else None
    row["ratio_to_batched_ceiling"] = round(batched / seconds, 3) if batched else None
    # (d): the ceiling plus the reading and hashing any implementation does (best of three), over
    # the records this run reached
    read: Any = dataset.full[:n] if capped and isinstance(dataset.full, list) else dataset.full
    if ceiling and (not capped or isinstance(read, list)):
        floor = ceiling + min(baselines.read_and_hash(read) for _ in range(3))
        row["floor_records_per_s"] = round(n / floor)
        row["floor_ratio_to_ceiling"] = round(ceiling / floor, 3)
    recorder.rows.clear()
    if literal_cap:
        literal = baselines.literal(dataset.source, db, template, dataset, present, literal_cap)
        row["literal"] = literal
        row["ratio_to_literal"] = round(row["records_per_s"] / literal["records_per_s"], 1)
    return row


def profile(dataset: Dataset, db: str, template: Any, top: int = 30) -> str:
    url = template.fresh()
    try:
        profiler = cProfile.Profile()
        profiler.enable()
        run_once(dataset.source, url, dataset.full)
        profiler.disable()
    finally:
        template.drop(url)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="bench.ingest")
    parser.add_argument("--quick", action="store_true", help="10k records only")
    parser.add_argument("--full", action="store_true", help="also 1M records")
    parser.add_argument("--db", choices=["sqlite", "postgres"], action="append")
    parser.add_argument("--source", choices=SOURCES, action="append")
    parser.add_argument("--literal-cap", type=int, default=1_000)
    parser.add_argument(
        "--time-cap", type=float, default=15.0, help="seconds per Kasparro run (0: none)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="cProfile listings at the largest size"
    )
    parser.add_argument(
        "--size",
        type=int,
        action="append",
        help="records per run (repeatable; replaces the defaults)",
    )
    parser.add_argument(
        "--present", type=int, choices=[0, 50], action="append",
        help="percent already present (repeatable; default 0 and 50, 50 above 10k only with --full)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    sizes = [10_000] if args.quick else [10_000, 100_000]
    if args.full:
        sizes.append(1_000_000)
    if args.size:
        sizes = sorted(set(args.size))
    dbs = args.db or ["sqlite", "postgres"]
    rows: list[dict[str, Any]] = []
    profiles: dict[str, str] = {}
    common.WORK.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(dir=common.WORK) as tmp,
        common.databases(dbs) as templates,
    ):
        for source in args.source or SOURCES:
            for n in sizes:
                t0 = time.perf_counter()
                dataset = Dataset(source, n, Path(tmp))
                print(f"[ingest] {source} {n:,}: data generated in {time.perf_counter() - t0:.1f}s")
                for db, template in templates.items():
                    for present in args.present or (0, 50):
                        if present and n > 10_000 and not (args.full or args.present):
                            continue  # 50% present at 100k+ only with --full (time budget)
                        cap = args.literal_cap if n == sizes[0] else 0
                        row = measure(dataset, db, template, present, cap, args.time_cap)
                        row.update(date=common.now_utc(), command=_command(argv))
                        rows.append(row)
                        print(_line(row))
                    if n == max(sizes[:2]) and args.profile:
                        profiles[f"{db}/{source}/{n}"] = profile(dataset, db, template)
                del dataset
    result = {"rows": _merged(rows), "command": _command(argv)}
    common.write_result("ingest", result)
    for key, text in profiles.items():
        name = key.replace("/", "_")
        (common.RESULTS / f"ingest_profile_{name}.txt").write_text(text)
    return result


def _merged(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """This run's rows over the stored ones, one per (source, DB, records, present): a run of
    a subset (one source, or the 1M size) keeps the other figures beside it, each with its date
    and machine."""
    previous = common.read_result("ingest") or {}
    # a stored row without a machine of its own keeps none: the file's belongs to its last writer
    stored = {k: previous.get(k) for k in ("date", "command")}
    merged = {_key(row): stored | row for row in previous.get("rows", [])}
    machine = common.machine()
    merged.update({_key(row): {"machine": machine} | row for row in rows})
    order = {s: i for i, s in enumerate(SOURCES)}
    return sorted(
        merged.values(),
        key=lambda r: (order.get(r["source"], len(order)), r["records"], r["db"], r["present_pct"]),
    )


def _key(row: dict[str, Any]) -> tuple[str, str, int, int]:
    return row["source"], row["db"], row["records"], row["present_pct"]


def _line(row: dict[str, Any]) -> str:
    text = (
        f"[ingest] {row['db']:8} {row['source']:11} {row['records']:>9,} present={row['present_pct']:>2}% "
        f"{row['records_per_s']:>8,} rec/s  ceiling {row['ceiling_records_per_s'] or 0:>9,} rec/s "
        f"(x{row['ratio_to_ceiling']}); per batch {row['batched_ceiling_records_per_s'] or 0:>9,} rec/s "
        f"(x{row['ratio_to_batched_ceiling']})"
    )
    if "floor_records_per_s" in row:
        text += (
            f"; floor {row['floor_records_per_s']:>8,} rec/s "
            f"(x{row['floor_ratio_to_ceiling']} of the ceiling)"
        )
    if row["capped"]:
        text += f" [time cap: {row['records_done']:,} records done]"
    if "literal" in row:
        text += f"  literal {row['literal']['records_per_s']:,} rec/s (x{row['ratio_to_literal']})"
    return text


def _command(argv: list[str] | None) -> str:
    if argv is None:  # run alone: its own command line
        return " ".join(["python -m bench.ingest", *sys.argv[1:]])
    return " ".join(["python -m bench.run_all ingest", *argv])


if __name__ == "__main__":
    main()
