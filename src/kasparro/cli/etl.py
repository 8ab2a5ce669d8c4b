"""``kasparro etl run|replay`` and ``kasparro sources``."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from kasparro.cli.common import boot, open_database
from kasparro.db.models import EtlCheckpoint, EtlRun
from kasparro.db.runs import RunCounts
from kasparro.ingestion.base import RunResult
from kasparro.ingestion.registry import SOURCES

app = typer.Typer(no_args_is_help=True)
SourceOption = Annotated[
    list[str] | None, typer.Option("--source", "-s", help="Run only this source (repeatable).")
]


def exit_code(results: list[RunResult]) -> int:
    """0 when every source succeeded, 2 when all failed, 1 otherwise."""
    ran = [r for r in results if r.status != "skipped"]
    if not ran or all(r.status == "success" for r in ran):
        return 0
    if all(r.status in ("failed", "interrupted") for r in ran):
        return 2
    return 1


def summary_table(results: list[RunResult]) -> Table:
    table = Table(title="ETL summary")
    for column in (
        "source",
        "run",
        "status",
        "fetched",
        "loaded",
        "unchanged",
        "quarantined",
        "drift",
        "duration",
        "error",
    ):
        table.add_column(
            column, justify="right" if column not in ("source", "status", "error") else "left"
        )
    colours = {
        "success": "green",
        "partial": "yellow",
        "failed": "red",
        "interrupted": "magenta",
        "skipped": "dim",
    }
    for r in results:
        table.add_row(
            r.source, str(r.run_id or "-"), f"[{colours.get(r.status, 'white')}]{r.status}[/]", str(r.fetched), str(r.loaded),
            str(r.unchanged), str(r.quarantined), str(r.drift_events), f"{r.duration_seconds:.2f}s", (r.error or "")[:80],
        )  # fmt: skip
    return table


def _validate_sources(sources: list[str] | None) -> list[str] | None:
    unknown = [s for s in sources or [] if s not in SOURCES]
    if unknown:
        raise typer.BadParameter(
            f"unknown source(s) {unknown}; choose from {sorted(SOURCES)}", param_hint="--source"
        )
    return sources or None


@app.command("run")
def run(source: SourceOption = None) -> None:
    """Run one ETL pass now, showing progress per source, and end with a summary table."""
    from kasparro.pipeline.runner import run_pass

    settings = boot()
    sources = _validate_sources(source)
    engine = open_database(settings)
    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    console = Console(stderr=True)
    progress: dict[str, RunCounts] = {}
    lock = threading.Lock()

    def render() -> Table:
        table = Table(
            "source", "fetched", "loaded", "unchanged", "quarantined", title="ETL progress"
        )
        for name, c in progress.items():
            table.add_row(name, str(c.fetched), str(c.loaded), str(c.unchanged), str(c.quarantined))
        return table

    with Live(render(), console=console, transient=True, refresh_per_second=4) as live:

        def on_progress(name: str, counts: RunCounts) -> None:
            with lock:
                progress[name] = RunCounts(**counts.as_dict())
                live.update(render())

        results = run_pass(
            settings, engine, sources=sources, trigger="manual", stop=stop, progress=on_progress
        )
    Console().print(summary_table(results))
    raise typer.Exit(exit_code(results))


@app.command("replay")
def replay(source: SourceOption = None) -> None:
    """Rebuild unified_crypto and price_history from stored raw payloads, without any network call."""
    from kasparro.pipeline.runner import replay_sources

    settings = boot()
    sources = _validate_sources(source)
    engine = open_database(settings)
    results = replay_sources(settings, engine, sources=sources)
    Console().print(summary_table(results))
    raise typer.Exit(exit_code(results))


def sources() -> None:
    """List sources: enabled or not, last run, checkpoint."""
    settings = boot(log=False)
    engine = open_database(settings)
    table = Table(
        "source",
        "enabled",
        "last run",
        "status",
        "started",
        "loaded",
        "checkpoint",
        title="Sources",
    )
    with Session(engine) as session:
        for name in SOURCES:
            last = session.scalars(
                select(EtlRun).where(EtlRun.source == name).order_by(EtlRun.id.desc()).limit(1)
            ).first()
            checkpoint = session.get(EtlCheckpoint, name)
            table.add_row(
                name,
                "yes" if name in settings.sources else "no",
                str(last.id) if last else "-",
                last.status if last else "-",
                last.started_at.isoformat(timespec="seconds") if last else "-",
                str(last.loaded) if last else "-",
                (checkpoint.last_value or "-") if checkpoint else "-",
            )
    Console().print(table)
