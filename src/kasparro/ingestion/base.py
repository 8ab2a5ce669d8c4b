"""BaseIngestion: the one loop every source runs (fetch → validate → raw → identity → unified →
history → checkpoint), with run tracking. Sources implement a few hooks and never override ``run``."""

from __future__ import annotations

import hashlib
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, final

import orjson
from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection, Engine, Table, delete, select
from sqlalchemy.exc import SQLAlchemyError

from kasparro.config import Settings
from kasparro.db import repository as repo
from kasparro.db import runs
from kasparro.db.bulk import BulkWriter
from kasparro.db.models import RAW_MODELS, EtlCheckpoint, PriceHistory, UnifiedCrypto, utcnow
from kasparro.exceptions import RecordValidationError, SourceError
from kasparro.ingestion.collector import fewer_collections
from kasparro.ingestion.drift import DriftDetector, DriftEvent, expected_schema
from kasparro.ingestion.identity import Identity, IdentityResolver
from kasparro.ingestion.transaction import SpanningTransaction
from kasparro.observability.logging import get_logger, log_context
from kasparro.schemas.unified import UnifiedRecord

log = get_logger(__name__)


@dataclass
class FetchedBatch:
    """Records as the upstream sent them, plus the checkpoint state once they are stored."""

    records: list[Any]
    state: dict[str, Any] | None = None
    quarantined: list[runs.QuarantinedRecord] = field(default_factory=list)


@dataclass
class RunResult:
    run_id: int | None
    source: str
    status: str
    fetched: int = 0
    loaded: int = 0
    unchanged: int = 0
    quarantined: int = 0
    drift_events: int = 0
    duration_seconds: float = 0.0
    error: str | None = None
    requests: int = 0
    retries: int = 0


@dataclass
class _Prepared:
    blob: str
    digest: str
    record: UnifiedRecord


@dataclass
class _PreparedBatch:
    """A fetched batch after validation: what is left to store, and what it counts as."""

    batch: FetchedBatch
    fresh: list[_Prepared]
    quarantined: list[runs.QuarantinedRecord]
    drift: list[DriftEvent]
    unchanged: int


_NUL_ESCAPE = "\\u0000"  # how orjson writes a NUL character inside a JSON string


def serialize(payload: Any) -> tuple[str, str]:
    """The payload as canonical JSON text (sorted keys) and its hash: equal payloads, equal hashes."""
    blob = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    return blob.decode(), hashlib.blake2b(blob, digest_size=16).hexdigest()


class BaseIngestion(ABC):
    """Subclasses set ``name`` and ``model`` and implement ``fetch`` and ``to_unified``."""

    name: ClassVar[str]
    model: ClassVar[type[BaseModel]]
    #: API sources skip records whose ``last_updated`` is not newer than what is stored.
    skip_not_newer: ClassVar[bool] = True
    #: CSV cells are all strings, so only missing and new columns count as drift.
    drift_ignores_types: ClassVar[bool] = False

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        stop: threading.Event | None = None,
        progress: Any = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.stop = stop or threading.Event()
        self.progress = progress
        self.raw_table: Table = RAW_MODELS[self.name].__table__  # type: ignore[attr-defined]
        self.counts = runs.RunCounts()
        self.requests = 0
        self.retries = 0
        self.run_id: int | None = None
        self._drift = DriftDetector(
            expected_schema(self.model), ignore_types=self.drift_ignores_types
        )
        # model_validate, minus a call
        self._validate = self.model.__pydantic_validator__.validate_python
        self._identity = IdentityResolver(engine, self.name)
        self._stored: dict[str, tuple[str | None, datetime | None]] = {}
        # what this run stored: coin ids (API sources), or (coin id, observed at) for file rows
        self._seen_this_run: set[str | tuple[str, datetime | None]] = set()
        self._fetch_time = utcnow().replace(microsecond=0)
        self._max_updated: datetime | None = None
        self._written_since_analyze = 0
        self._analyze_threshold = 2000
        self._transaction = SpanningTransaction(engine, interval=settings.commit_interval)
        # what the batches in the open transaction add to the run's counters and the checkpoint
        self._uncommitted = runs.RunCounts()
        self._checkpoint: tuple[str, dict[str, Any]] | None = None

    # hooks ----------------------------------------------------------------------------------

    @abstractmethod
    def fetch(self, checkpoint: EtlCheckpoint | None) -> Iterator[FetchedBatch]:
        """Yield batches of raw records, each with the checkpoint state it completes (if any)."""

    @abstractmethod
    def to_unified(self, item: Any) -> UnifiedRecord:
        """Map one validated source model to the unified record (raise RecordValidationError to quarantine)."""

    def normalize(self, payload: Any) -> Any:
        """The payload as the source model reads it (CSV renames its header aliases here)."""
        return payload

    def record_id(self, payload: Any) -> str | None:
        """The source's id for a raw record, if it has one (used to label quarantined records)."""
        if isinstance(payload, dict):
            value = payload.get("id")
            return str(value)[:255] if value is not None else None
        return None

    def unified(self, payload: Any, drift: list[DriftEvent]) -> UnifiedRecord:
        """One payload validated and mapped; the drift it shows is added to ``drift``. Raises
        ``ValidationError`` or ``RecordValidationError`` for a record to quarantine."""
        data = self.normalize(payload)
        drift.extend(self._drift.observe(data))
        return self.to_unified(self._validate(data))

    def close(self) -> None:  # noqa: B027 - an optional hook; most sources hold nothing to release
        """Release clients; called once after the run."""

    # the loop -------------------------------------------------------------------------------

    @final
    def run(self, *, trigger: str = "manual") -> RunResult:
        started = time.monotonic()
        self.run_id = runs.start_run(self.engine, source=self.name, trigger=trigger)
        status, error = "failed", None
        with log_context(run_id=self.run_id, source=self.name), fewer_collections():
            log.info("ETL run started", extra={"trigger": trigger})
            try:
                with self.engine.connect() as conn:
                    checkpoint = repo.load_checkpoint(conn=conn, source=self.name)
                    self._stored = repo.latest_records(conn=conn, source=self.name)
                    self._identity.preload(conn)
                for batch in self._rebatched(self.fetch(checkpoint)):
                    if self.stop.is_set():
                        break
                    self._store_batch(batch)
                self._commit()  # the batches in flight, also when stopping
                status = "interrupted" if self.stop.is_set() else "success"
                if status == "success" and self.counts.quarantined:
                    status = "partial"
            except SourceError as exc:
                error = str(exc)
                try:  # what was stored before the source failed stands
                    self._commit()
                except SQLAlchemyError as db_exc:
                    error = f"{error}; then {_database_error(db_exc)}"
                status = "partial" if self.counts.loaded or self.counts.unchanged else "failed"
                if self.stop.is_set():
                    status = "interrupted"
                log.error("source failed", extra={"error": error, "status_code": exc.status_code})
            except SQLAlchemyError as exc:
                error = _database_error(exc)
                log.error("database error during run", extra={"error": error})
            except Exception as exc:
                error = f"unexpected error: {exc.__class__.__name__}: {exc}"
                log.exception("unexpected error during run")
            finally:
                self._rollback()  # only if an error left the transaction open
                self.close()
            result = self._finish(status, error, time.monotonic() - started)
            log.info(
                "ETL run completed",
                extra={
                    "status": result.status,
                    "records_processed": self.counts.fetched,  # the spec's name for it
                    **self.counts.as_dict(),
                    "duration_seconds": round(result.duration_seconds, 3),
                },
            )
        return result

    def _finish(self, status: str, error: str | None, duration: float) -> RunResult:
        """Record the final status, retrying while the database recovers; if it stays away, the
        status is kept in memory and written by the next stale-run check of this process."""
        run_id = self.run_id or 0
        final: dict[str, Any] = {
            "status": status,
            "error": error,
            "requests": self.requests,
            "retries": self.retries,
        }
        for attempt in range(4):
            try:
                runs.finish_run(self.engine, run_id=run_id, **final)
                break
            except SQLAlchemyError as exc:
                log.error(
                    "could not record the run's final status",
                    extra={"attempt": attempt + 1, "error": str(exc).splitlines()[0]},
                )
                if attempt == 3:
                    runs.remember_unfinished(run_id, **final)
                else:
                    self.stop.wait(0.5 * 2**attempt)
        return RunResult(
            self.run_id,
            self.name,
            status,
            duration_seconds=duration,
            error=error,
            requests=self.requests,
            retries=self.retries,
            **self.counts.as_dict(),
        )

    def _prepare(self, batch: FetchedBatch) -> _PreparedBatch:
        """Validate and map a batch; what it stores is remembered at once, so a record repeated
        in the next batch counts as unchanged even before this one commits (a batch that fails
        to commit ends the run, and with it this memory)."""
        prepared: list[_Prepared] = []
        quarantined = list(batch.quarantined)
        if not self.skip_not_newer:
            # file rows repeat only within a batch in practice; a run-wide set would grow with the file
            self._seen_this_run.clear()
        drift: list[DriftEvent] = []
        unchanged = 0
        unified = self.unified
        for payload in batch.records:
            try:
                record = unified(payload, drift)
            except ValidationError as exc:
                errors = [
                    {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"], "type": e["type"]}
                    for e in exc.errors(include_url=False, include_input=False)
                ]
                reason = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors)[:1000]
                quarantined.append(
                    runs.QuarantinedRecord(self.record_id(payload), payload, reason, errors)
                )
                continue
            except RecordValidationError as exc:
                quarantined.append(
                    runs.QuarantinedRecord(self.record_id(payload), payload, str(exc))
                )
                continue
            blob, digest = serialize(payload)
            if _NUL_ESCAPE in blob:
                reason = "contains NUL characters, which the database cannot store"
                quarantined.append(runs.QuarantinedRecord(self.record_id(payload), payload, reason))
                continue
            stored_hash, stored_updated = self._stored.get(record.coin_id, (None, None))
            key = (
                record.coin_id
                if self.skip_not_newer
                else (record.coin_id, record.source_updated_at)  # no text: formatting costs µs
            )
            if (
                stored_hash == digest
                or key in self._seen_this_run
                or (
                    self.skip_not_newer
                    and stored_updated
                    and record.source_updated_at
                    and record.source_updated_at <= stored_updated
                )
            ):
                unchanged += 1
                continue
            self._seen_this_run.add(key)
            self._stored[record.coin_id] = (digest, record.source_updated_at)
            prepared.append(_Prepared(blob, digest, record))
        return _PreparedBatch(batch, prepared, quarantined, drift, unchanged)

    def _store_batch(self, batch: FetchedBatch) -> None:
        """Validate a batch, then store everything it implies in the open transaction:
        identities, raw payloads, unified rows, history, quarantine, drift, checkpoint, counters.
        The transaction commits once it has been open ``commit_interval`` seconds."""
        item = self._prepare(batch)
        for event in item.drift:
            log.warning(
                "schema drift detected",
                extra={
                    "field": event.field,
                    "kind": event.kind,
                    "expected": event.expected,
                    "observed": event.observed,
                },
            )
        created_before = self._identity.created
        try:
            counts = self._write_batch(self._transaction.connection(), item)
        except BaseException:
            self._rollback()
            raise
        self._uncommitted.add(counts)
        # On PostgreSQL a new asset's key stays locked until commit; a source holding keys from
        # several batches could deadlock with another source taking the same keys in a different
        # order, so a batch that created assets commits at once (keys go in sorted order within one).
        created = self._identity.created != created_before
        if self._transaction.due() or (created and self.engine.dialect.name == "postgresql"):
            self._commit()

    def _commit(self) -> None:
        """Commit the open transaction (if any) and take in what it stored."""
        if not self._transaction.is_open:
            return
        try:
            conn = self._transaction.connection()
            # the checkpoint and the run's counters cover exactly what this transaction stored
            if self._checkpoint is not None:
                last_value, state = self._checkpoint
                repo.save_checkpoint(
                    conn=conn,
                    source=self.name,
                    last_value=last_value,
                    state=state,
                    run_id=self.run_id,
                )
            runs.add_batch_counts(conn=conn, run_id=self.run_id or 0, counts=self._uncommitted)
            # the served data changed: done last, so the single row is locked only briefly
            repo.bump_data_version(conn=conn)
            self._transaction.commit()
        except BaseException:
            self._rollback()
            raise
        self._identity.commit()
        self._checkpoint = None
        counts, self._uncommitted = self._uncommitted, runs.RunCounts()
        self.counts.add(counts)
        self._refresh_statistics(counts.loaded)
        if self.progress is not None:
            self.progress(self.name, self.counts)

    def commit_before_waiting(self) -> None:
        """Commit what is open before the source waits on something slow (an upstream request,
        its rate limit, its retries): an open transaction must not hold SQLite's write lock, or
        a PostgreSQL connection idle in transaction, for as long as a ``Retry-After``. Called by
        HTTP sources before every request, between batches (the fetch is suspended meanwhile)."""
        self._commit()

    def _rollback(self) -> None:
        self._transaction.rollback()
        self._identity.discard()
        self._uncommitted = runs.RunCounts()
        self._checkpoint = None

    def _rebatched(self, batches: Iterator[FetchedBatch]) -> Iterator[FetchedBatch]:
        """Merge small stateless batches (API pages) up to ``batch_size``: fewer, larger
        transactions. Batches carrying checkpoint state (file offsets) pass through as they are."""
        held: list[Any] = []
        for batch in batches:
            if batch.state is not None or batch.quarantined:
                if held:
                    yield FetchedBatch(held)
                    held = []
                yield batch
                continue
            held.extend(batch.records)
            if len(held) >= self.settings.batch_size:
                yield FetchedBatch(held)
                held = []
        if held:
            yield FetchedBatch(held)

    def _refresh_statistics(self, written: int) -> None:
        """Keep PostgreSQL's planner statistics current while a large first load grows the tables.

        Autovacuum analyzes at most once a minute; until it does, the planner believes the tables
        are still empty and scans them whole for every lookup (measured: 100k new coins went from
        minutes to seconds). The threshold doubles each time, so this costs a few ANALYZEs per run.
        Only the tables the run itself looks rows up in are analyzed (identities, and the raw
        table's payload hashes); the unified and history tables are only written during a run,
        and autovacuum's own ANALYZE serves the API's reads of them (measured: analyzing those
        two as well cost 5-7% of a 100k-row CSV load).
        """
        self._written_since_analyze += written
        if (
            self.engine.dialect.name != "postgresql"
            or self._written_since_analyze < self._analyze_threshold
        ):
            return
        tables = ", ".join(("asset", "asset_source", self.raw_table.name))
        with self.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                f"ANALYZE {tables}"
            )
        self._written_since_analyze = 0
        self._analyze_threshold *= 2

    def _write_batch(self, conn: Connection, item: _PreparedBatch) -> runs.RunCounts:
        batch, prepared, unchanged = item.batch, item.fresh, item.unchanged
        known = repo.existing_hashes(
            conn=conn, table=self.raw_table, keys=[(p.record.coin_id, p.digest) for p in prepared]
        )
        if known:
            unchanged += sum(1 for p in prepared if p.digest in known)
            prepared = [p for p in prepared if p.digest not in known]
        assets = self._resolve(conn, prepared)
        counts = runs.RunCounts(
            fetched=len(batch.records) + len(batch.quarantined),
            loaded=len(prepared),
            unchanged=unchanged,
            quarantined=len(item.quarantined),
            drift_events=len(item.drift),
        )
        self._write(conn, prepared, assets, write_raw=True)
        runs.record_quarantine(
            conn=conn, source=self.name, run_id=self.run_id, records=item.quarantined
        )
        runs.record_drift(conn=conn, source=self.name, run_id=self.run_id or 0, events=item.drift)
        self._move_checkpoint(batch, prepared)
        return counts

    def _resolve(self, conn: Connection, prepared: list[_Prepared]) -> dict[str, int]:
        """coin_id → asset_id for every prepared record; only coins the resolver does not know
        yet are handed to it (on a steady run, none)."""
        known = self._identity.cache
        new = [
            Identity(r.coin_id, r.symbol, r.name)
            for p in prepared
            if (r := p.record).coin_id not in known
        ]
        resolved = self._identity.resolve(new, conn=conn) if new else {}
        return {
            p.record.coin_id: resolved.get(p.record.coin_id) or known[p.record.coin_id]
            for p in prepared
        }

    def _write(
        self,
        conn: Connection,
        prepared: list[_Prepared],
        assets: dict[str, int],
        *,
        write_raw: bool,
    ) -> None:
        """Raw payloads, the latest record per asset and every observation, as three batched statements."""
        if not prepared:
            return
        bulk = BulkWriter(conn)
        ts = bulk.timestamp
        now = ts(utcnow())
        run_id, source = self.run_id, self.name
        if write_raw:
            raw_table = self.raw_table.name
            raw_rows = [(run_id, p.record.coin_id, p.blob, p.digest, now) for p in prepared]
            for part in repo.chunks(raw_rows, self.settings.batch_size):
                bulk.insert_raw(raw_table, part)
        latest: dict[int, tuple[_Prepared, Any]] = {}  # asset_id -> (record, its stored timestamp)
        history = []
        fetch_time = ts(self._fetch_time)
        max_updated = self._max_updated
        for p in prepared:
            r = p.record
            asset_id = assets[r.coin_id]
            updated = r.source_updated_at
            stamp = ts(updated) if updated is not None else None
            previous = latest.get(asset_id)
            if previous is None or _newer_or_equal(updated, previous[0].record.source_updated_at):
                latest[asset_id] = (p, stamp)
            history.append(
                (
                    asset_id, source, stamp or fetch_time, r.price_usd, r.market_cap_usd, r.volume_24h_usd,
                    r.open_usd, r.high_usd, r.low_usd, run_id,
                )
            )  # fmt: skip
            if updated is not None and (max_updated is None or updated > max_updated):
                max_updated = updated
        self._max_updated = max_updated
        unified = [
            (
                asset_id, source, r.coin_id, r.symbol, r.name, r.rank, r.price_usd, r.market_cap_usd, r.volume_24h_usd,
                r.circulating_supply, r.total_supply, r.max_supply, r.percent_change_24h, stamp, now,
                run_id, p.digest,
            )
            for asset_id, (p, stamp) in latest.items()
            for r in (p.record,)
        ]  # fmt: skip
        for part in repo.chunks(unified, self.settings.batch_size):
            bulk.upsert_unified(part)
        for part in repo.chunks(history, self.settings.batch_size):
            bulk.insert_history(part)

    def _move_checkpoint(self, batch: FetchedBatch, prepared: list[_Prepared]) -> None:
        """Where the checkpoint stands once this batch commits (written by :meth:`_commit`, in
        the same transaction); a batch that stored nothing leaves it be.

        File sources hand in their own state (file identity and offset); API sources keep the
        newest ``last_updated`` stored, dlt-style, as ``last_value``.
        """
        if batch.state is not None:
            self._checkpoint = (str(batch.state.get("last_value")), batch.state)
        elif prepared and self._max_updated is not None:
            last_value = self._max_updated.isoformat()
            self._checkpoint = (last_value, {"max_source_updated_at": last_value})

    # replay ---------------------------------------------------------------------------------

    @final
    def replay(self) -> RunResult:
        """Rebuild this source's unified rows and history from stored raw payloads, with no network call."""
        started = time.monotonic()
        self.run_id = runs.start_run(self.engine, source=self.name, trigger="replay")
        status, error = "failed", None
        with log_context(run_id=self.run_id, source=self.name), fewer_collections():
            try:
                with self.engine.begin() as conn:
                    conn.execute(delete(UnifiedCrypto).where(UnifiedCrypto.source == self.name))
                    conn.execute(delete(PriceHistory).where(PriceHistory.source == self.name))
                    self._identity.preload(conn)
                    for payloads in self._raw_payloads(conn):
                        self._replay_batch(conn, payloads)
                    repo.bump_data_version(conn=conn)
                    runs.add_batch_counts(conn=conn, run_id=self.run_id, counts=self.counts)
                self._identity.commit()
                status = "partial" if self.counts.quarantined else "success"
            except SQLAlchemyError as exc:
                error = f"database error: {str(exc).splitlines()[0][:500]}"
                log.error("replay failed", extra={"error": error})
            result = self._finish(status, error, time.monotonic() - started)
        return result

    def _raw_payloads(self, conn: Connection) -> Iterator[list[Any]]:
        table = self.raw_table
        last_id = 0
        while True:
            rows = conn.execute(
                select(table.c.id, table.c.payload)
                .where(table.c.id > last_id)
                .order_by(table.c.id)
                .limit(self.settings.batch_size)
            ).all()
            if not rows:
                return
            last_id = rows[-1][0]
            yield [payload for _, payload in rows]

    def _replay_batch(self, conn: Connection, payloads: list[Any]) -> None:
        prepared: list[_Prepared] = []
        for payload in payloads:
            self.counts.fetched += 1
            try:
                record = self.unified(payload, [])  # replay records no drift
            except (ValidationError, RecordValidationError):
                self.counts.quarantined += 1
                continue
            prepared.append(_Prepared(*serialize(payload), record))
        self.counts.loaded += len(prepared)
        self._write(conn, prepared, self._resolve(conn, prepared), write_raw=False)


def _database_error(exc: SQLAlchemyError) -> str:
    return f"database error: {exc.__class__.__name__}: {str(exc).splitlines()[0][:500]}"


def _newer_or_equal(candidate: datetime | None, current: datetime | None) -> bool:
    if candidate is None or current is None:
        return True
    return candidate >= current


def ensure_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
