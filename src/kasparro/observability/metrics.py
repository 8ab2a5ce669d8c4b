"""Prometheus metrics: HTTP metrics kept in-process, ETL metrics read from the database at scrape time.

ETL metrics are derived from ``etl_run``, ``schema_drift``, ``quarantine`` and ``circuit_breaker``
whenever ``/metrics`` is scraped, so they are right whichever process ran the pipeline. Process
metrics (``process_*``) describe the one process, or with several workers each worker (``pid``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from kasparro.db import queries, status_queries
from kasparro.observability.workers import WorkerProcessCollector, announce_worker

log = logging.getLogger("kasparro.metrics")

HTTP_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
RUN_DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
RECORD_STAGES = ("fetched", "loaded", "unchanged", "quarantined")
#: prometheus-client's switch to multiprocess mode, read when it is imported
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    """The request method as a metric label: the standard ones, everything else ``OTHER``."""
    upper = method.upper()
    return upper if upper in HTTP_METHODS else "OTHER"


class EtlCollector(Collector):
    """Builds ETL metric families from the database on every scrape."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def describe(self) -> list[Metric]:
        return []  # keeps registration from querying the database

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "kasparro_etl_metrics_up", "1 when ETL metrics could be read from the database."
        )
        try:
            families = self._families()
        except Exception as exc:
            log.warning("etl metrics unavailable", extra={"error_type": type(exc).__name__})
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self) -> list[Metric]:
        with self.engine.connect() as conn:
            totals = status_queries.run_totals(conn=conn)
            durations = status_queries.duration_histogram(conn=conn, bounds=RUN_DURATION_BUCKETS)
            counts = status_queries.counts_by_source(conn=conn)
            successes = status_queries.last_successes(conn=conn)
            breaker_rows = status_queries.breakers(conn=conn)
            version, _ = queries.read_data_state(conn=conn)

        # a running run changes status when it ends: counting it would make the counter go down
        runs = CounterMetricFamily(
            "kasparro_etl_runs",
            "Finished ETL runs by source and final status.",
            labels=["source", "status"],
        )
        in_progress = GaugeMetricFamily(
            "kasparro_etl_runs_in_progress", "ETL runs currently running.", labels=["source"]
        )
        running: dict[str, int] = {}
        records = CounterMetricFamily(
            "kasparro_etl_records",
            "Records handled by ETL runs, by stage.",
            labels=["source", "stage"],
        )
        per_stage: dict[tuple[str, str], int] = {}
        for row in totals:
            source = str(row["source"])
            running.setdefault(source, 0)
            if row["status"] == "running":
                running[source] += int(row["runs"])
            else:
                runs.add_metric([source, row["status"]], int(row["runs"]))
            for stage in RECORD_STAGES:
                key = (str(row["source"]), stage)
                per_stage[key] = per_stage.get(key, 0) + int(row[stage])
        for (source, stage), value in sorted(per_stage.items()):
            records.add_metric([source, stage], value)

        duration = HistogramMetricFamily(
            "kasparro_etl_run_duration_seconds", "Wall time of ETL runs.", labels=["source"]
        )
        for source, (cumulative, total, count) in sorted(durations.items()):
            buckets = [
                (str(b), float(c)) for b, c in zip(RUN_DURATION_BUCKETS, cumulative, strict=True)
            ]
            duration.add_metric([source], [*buckets, ("+Inf", float(count))], total)

        drift = CounterMetricFamily(
            "kasparro_etl_drift_events", "Schema drift events recorded.", labels=["source"]
        )
        quarantined = CounterMetricFamily(
            "kasparro_etl_quarantined_records", "Records held in quarantine.", labels=["source"]
        )
        unified = GaugeMetricFamily(
            "kasparro_unified_records", "Rows in the unified table.", labels=["source"]
        )
        for source, values in sorted(counts.items()):
            drift.add_metric([source], values.get("drift_events", 0))
            quarantined.add_metric([source], values.get("quarantined", 0))
            unified.add_metric([source], values.get("unified_rows", 0))

        last_success = GaugeMetricFamily(
            "kasparro_etl_last_success_timestamp_seconds",
            "End of the last successful run (Unix time).",
            labels=["source"],
        )
        for source, finished in sorted(successes.items()):
            last_success.add_metric([source], finished.timestamp())

        breaker = GaugeMetricFamily(
            "kasparro_circuit_breaker_open",
            "1 when a source's circuit breaker is open.",
            labels=["source"],
        )
        for source, row in sorted(breaker_rows.items()):
            breaker.add_metric([source], 1.0 if row["state"] == "open" else 0.0)

        data_version = GaugeMetricFamily("kasparro_data_version", "Current data version counter.")
        data_version.add_metric([], version)
        for source, value in sorted(running.items()):
            in_progress.add_metric([source], value)
        return [
            runs,
            in_progress,
            records,
            duration,
            drift,
            quarantined,
            unified,
            last_success,
            breaker,
            data_version,
        ]


class ApiMetrics:
    """One registry per app: HTTP metrics, ETL metrics from the database, process metrics.

    With several worker processes (``kasparro api --workers N`` sets ``PROMETHEUS_MULTIPROC_DIR``)
    each worker's HTTP counters live in files in that directory, and a scrape, whichever worker
    answers it, adds up all of them (prometheus-client's multiprocess mode). Process metrics then
    come one series per live worker, labelled ``pid`` (see :mod:`kasparro.observability.workers`);
    GC metrics are left out, as one worker's figures would pass for the whole service's.
    """

    def __init__(self, engine: Engine) -> None:
        # the *_created series only add noise to counters scraped this way
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=False)  # what /metrics renders
        self.multiprocess_dir = os.environ.get(MULTIPROCESS_ENV) or None
        own = CollectorRegistry(auto_describe=False) if self.multiprocess_dir else self.registry
        self.requests = Counter(
            "http_requests",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=own,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency by method and route template.",
            ["method", "route"],
            buckets=HTTP_LATENCY_BUCKETS,
            registry=own,
        )
        self.workers = announce_worker(own)
        self.registry.register(EtlCollector(engine))
        PlatformCollector(registry=self.registry)
        if self.multiprocess_dir:
            MultiProcessCollector(self.registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
            self.registry.register(WorkerProcessCollector(self.multiprocess_dir))
        else:
            ProcessCollector(registry=self.registry)
            GCCollector(registry=self.registry)

    def observe(self, *, method: str, route: str, status: int, seconds: float) -> None:
        label = method_label(method)
        self.requests.labels(label, route, str(status)).inc()
        self.latency.labels(label, route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
