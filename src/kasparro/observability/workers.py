"""Process metrics (``process_*``) of every API worker, for prometheus-client's multiprocess mode.

prometheus-client exports no process metrics in multiprocess mode: its ``ProcessCollector`` only
describes the process that answers the scrape. Here each worker announces itself with a
``livesum`` gauge (a file named after its pid in the shared directory), and the worker answering
a scrape reads ``/proc/<pid>`` of every announced worker that is still alive, labelling each
series with ``pid`` (as the library does for multiprocess gauges). Figures are read at scrape
time, so they are never stale; a worker that died is dropped, and its gauge file removed with
the library's ``mark_process_dead``. Linux only, like ``ProcessCollector``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import Metric
from prometheus_client.multiprocess import mark_process_dead
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

#: the file prometheus-client writes for a ``livesum`` gauge of process ``pid``
_ANNOUNCEMENT = re.compile(r"^gauge_livesum_(\d+)\.db$")
PROC = Path("/proc")


def announce_worker(registry: CollectorRegistry) -> Gauge:
    """Count this process as a live API worker (``kasparro_api_workers``), in either mode."""
    workers = Gauge(
        "kasparro_api_workers",
        "API worker processes alive.",
        multiprocess_mode="livesum",
        registry=registry,
    )
    workers.set(1)
    return workers


def _parent(pid: int) -> int | None:
    try:
        stat = (PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    return int(stat.rsplit(b")", 1)[-1].split()[1])


class WorkerProcessCollector(Collector):
    """``process_*`` of every live worker announced in ``directory``, one series per pid."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    def describe(self) -> list[Metric]:
        return []

    def workers(self) -> list[int]:
        """Announced workers still alive: this process and its siblings under one supervisor."""
        if not (PROC / "self" / "stat").exists():
            return []
        me, supervisor = os.getpid(), os.getppid()
        alive = []
        for path in self.directory.iterdir():
            match = _ANNOUNCEMENT.match(path.name)
            if match is None:
                continue
            pid = int(match.group(1))
            # a pid whose process is gone (or reused by an unrelated one) is a dead worker
            if pid == me or _parent(pid) == supervisor:
                alive.append(pid)
            else:
                # two workers answering scrapes at once may both find it dead: one removes it
                with contextlib.suppress(FileNotFoundError):
                    mark_process_dead(pid, str(self.directory))  # type: ignore[no-untyped-call]
        return sorted(alive)

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for pid in self.workers():
            reader = ProcessCollector(pid=functools.partial(int, pid), registry=None)
            for metric in reader.collect():
                family = families.setdefault(
                    metric.name, Metric(metric.name, metric.documentation, metric.type)
                )
                for sample in metric.samples:
                    family.add_sample(sample.name, {**sample.labels, "pid": str(pid)}, sample.value)
        yield from families.values()
