"""Stage timing for the real ingest path, by wrapping its functions in the bench process only."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from kasparro.db import repository, runs

try:
    from kasparro.db import bulk
except ImportError:  # older tree: everything goes through the repository functions
    bulk = None  # type: ignore[assignment]
from kasparro.ingestion import base, transaction
from kasparro.ingestion.identity import IdentityResolver

STAGES = (
    "fetch/parse",
    "validate+map",
    "dedupe lookup",
    "identity",
    "raw insert",
    "unified upsert",
    "history insert",
    "build rows",
    "checkpoint+bookkeeping",
    "commit",
    "other",
)


class Recorder:
    """Seconds per stage, plus the rows each table received (for the ceiling baseline)."""

    def __init__(self, *, capture: bool = False) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.capture = capture
        self.rows: dict[str, tuple[tuple[str, ...], list[tuple[Any, ...]]]] = {}

    def keep(self, table: str, columns: tuple[Any, ...], rows: Any) -> None:
        """Remember rows written to ``table``; ``columns`` are names or (name, type) pairs."""
        if self.capture and rows:
            names = tuple(c[0] if isinstance(c, tuple) else c for c in columns)
            self.rows.setdefault(table, (names, []))[1].extend(rows)

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] += seconds

    def split(self, total: float) -> dict[str, float]:
        """Exclusive seconds per stage (the stages do not nest, except the inserts inside
        ``_write``, subtracted from "build rows"); "other" is the rest of the run's wall time:
        starting and finishing the run, and waiting for the last WAL checkpoint on SQLite."""
        s = self.seconds
        inserts = s["raw insert"] + s["unified upsert"] + s["history insert"]
        out = {stage: s[stage] for stage in STAGES if stage not in ("build rows", "other")}
        out["build rows"] = max(0.0, s["_write"] - inserts)
        out["other"] = max(0.0, total - sum(out.values()))
        return {stage: round(out[stage], 4) for stage in STAGES}


def _timed(recorder: Recorder, stage: str | Callable[..., str], fn: Callable[..., Any]) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            name = stage(*args, **kwargs) if callable(stage) else stage
            recorder.add(name, time.perf_counter() - started)

    return wrapper


def _insert_stage(*_args: Any, **kwargs: Any) -> str:
    return "history insert" if kwargs["table"].name == "price_history" else "raw insert"


def _swap(patches: list[tuple[Any, str, Any]], owner: Any, name: str, new: Any) -> None:
    patches.append((owner, name, getattr(owner, name)))
    setattr(owner, name, new)


def _patch_bulk(recorder: Recorder, patches: list[tuple[Any, str, Any]]) -> None:
    writer = bulk.BulkWriter
    raw, upsert, history = writer.insert_raw, writer.upsert_unified, writer.insert_history

    def insert_raw(self: Any, table: str, rows: Any) -> None:
        recorder.keep(table, bulk.RAW_COLUMNS, rows)
        raw(self, table, rows)

    def upsert_unified(self: Any, rows: Any) -> None:
        recorder.keep("unified_crypto", bulk.UNIFIED_COLUMNS, rows)
        upsert(self, rows)

    def insert_history(self: Any, rows: Any) -> None:
        recorder.keep("price_history", bulk.HISTORY_COLUMNS, rows)
        history(self, rows)

    assets, sources = writer.insert_assets, writer.insert_asset_sources

    def insert_assets(self: Any, rows: Any) -> Any:  # timed with identity, as part of it
        recorder.keep("asset", bulk.ASSET_COLUMNS, rows)
        return assets(self, rows)

    def insert_asset_sources(self: Any, rows: Any) -> Any:
        recorder.keep("asset_source", bulk.ASSET_SOURCE_COLUMNS, rows)
        return sources(self, rows)

    _swap(patches, writer, "insert_assets", insert_assets)
    _swap(patches, writer, "insert_asset_sources", insert_asset_sources)
    _swap(patches, writer, "insert_raw", _timed(recorder, "raw insert", insert_raw))
    _swap(patches, writer, "upsert_unified", _timed(recorder, "unified upsert", upsert_unified))
    _swap(patches, writer, "insert_history", _timed(recorder, "history insert", insert_history))


def _patch_repository(recorder: Recorder, patches: list[tuple[Any, str, Any]]) -> None:
    original_insert = repository.insert_ignoring_conflicts
    original_upsert = repository.upsert_unified

    def as_tuples(table: str, rows: Any) -> None:
        if rows:
            columns = tuple(rows[0])
            recorder.keep(table, columns, [tuple(r[c] for c in columns) for r in rows])

    def capturing_insert(**kwargs: Any) -> None:
        as_tuples(kwargs["table"].name, kwargs["rows"])
        original_insert(**kwargs)

    def capturing_upsert(**kwargs: Any) -> None:
        as_tuples("unified_crypto", kwargs["rows"])
        original_upsert(**kwargs)

    new_insert = _timed(recorder, _insert_stage, capturing_insert)
    _swap(patches, repository, "insert_ignoring_conflicts", new_insert)
    _swap(
        patches, repository, "upsert_unified", _timed(recorder, "unified upsert", capturing_upsert)
    )


@contextmanager
def instrumented(recorder: Recorder) -> Iterator[Recorder]:
    """Patch the ingest path's functions with timing wrappers; restored on exit."""
    patches: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, name: str, stage: str | Callable[..., str]) -> None:
        original = getattr(owner, name)
        patches.append((owner, name, original))
        setattr(owner, name, _timed(recorder, stage, original))

    if bulk is not None:  # the driver-level writer (tuples in a fixed column order)
        _patch_bulk(recorder, patches)
    else:  # the Core path (dicts)
        _patch_repository(recorder, patches)
    patch(base.BaseIngestion, "_prepare", "validate+map")
    patch(transaction.SpanningTransaction, "commit", "commit")
    patch(base.BaseIngestion, "_write", "_write")
    patch(repository, "save_checkpoint", "checkpoint+bookkeeping")
    patch(repository, "existing_hashes", "dedupe lookup")
    patch(repository, "bump_data_version", "checkpoint+bookkeeping")
    patch(IdentityResolver, "resolve", "identity")
    for name in ("record_quarantine", "record_drift", "add_batch_counts"):
        patch(runs, name, "checkpoint+bookkeeping")
    try:
        yield recorder
    finally:
        for owner, name, original in reversed(patches):
            setattr(owner, name, original)


def timed_batches(recorder: Recorder, batches: Iterator[Any]) -> Iterator[Any]:
    """Re-yield a fetch generator's batches, charging the time spent producing them to fetch/parse."""
    while True:
        started = time.perf_counter()
        try:
            batch = next(batches)
        except StopIteration:
            recorder.add("fetch/parse", time.perf_counter() - started)
            return
        recorder.add("fetch/parse", time.perf_counter() - started)
        yield batch
