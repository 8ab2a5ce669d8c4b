"""CSV: a local file read incrementally (checkpoint = file identity + byte offset), in batches.

Accepts the unified column layout and the daily-history layout
``SNo,Name,Symbol,Date,High,Low,Open,Close,Volume,Marketcap``: header names are normalized, a
BOM, extra columns and quoted fields are handled, and a bad line is quarantined with its reason.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import math
import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from kasparro.db.models import EtlCheckpoint
from kasparro.db.runs import QuarantinedRecord
from kasparro.exceptions import FatalSourceError, RecordValidationError
from kasparro.ingestion.base import BaseIngestion, FetchedBatch
from kasparro.ingestion.csv_plain import LONGEST_NULL_TOKEN, NUMERIC, REQUIRED, plain_fields
from kasparro.ingestion.drift import DriftEvent
from kasparro.ingestion.sample import write_sample_csv
from kasparro.observability.logging import get_logger
from kasparro.schemas.common import as_utc
from kasparro.schemas.csv import COLUMN_ALIASES, NULL_TOKENS, CsvRow
from kasparro.schemas.unified import UnifiedRecord, normalize_name

log = get_logger(__name__)
MAX_LINE_BYTES = 1 << 20
#: A final line without a newline is left for the next run while the file changed this recently.
SETTLE_SECONDS = 10.0
csv.field_size_limit(MAX_LINE_BYTES)
_HEAD_BYTES = 4096
_OPTIONAL = set(CsvRow.model_fields) - REQUIRED
_HEADER_CLEAN = re.compile(r"[\s\-]+")


@functools.lru_cache(maxsize=1024)
def normalize_header(name: str) -> str:
    cleaned = _HEADER_CLEAN.sub("_", name.replace("\ufeff", "").strip().lower()).strip("_")
    return COLUMN_ALIASES.get(cleaned, cleaned)


def file_identity(path: Path) -> dict[str, Any]:
    stat = path.stat()
    with path.open("rb") as handle:
        head = handle.read(_HEAD_BYTES)
    return {
        "device": stat.st_dev,
        "inode": stat.st_ino,
        "size": stat.st_size,
        "head": hashlib.blake2b(head, digest_size=8).hexdigest(),
        "head_len": len(head),
    }


def tail_hash(path: Path, offset: int) -> str:
    """Hash of the bytes just before ``offset``: a rewrite that keeps the head still changes these."""
    with path.open("rb") as handle:
        start = max(0, offset - _HEAD_BYTES)
        handle.seek(start)
        return hashlib.blake2b(handle.read(offset - start), digest_size=8).hexdigest()


def _same_file(state: dict[str, Any], path: Path) -> bool:
    """The checkpointed file is still there and was only appended to, not rewritten."""
    current = file_identity(path)
    offset = int(state.get("offset", 0))
    if (current["device"], current["inode"]) != (state.get("device"), state.get("inode")):
        return False
    if current["size"] < offset or state.get("head_len", 0) > current["head_len"]:
        return False
    with path.open("rb") as handle:
        head = handle.read(int(state.get("head_len", 0)))
    if hashlib.blake2b(head, digest_size=8).hexdigest() != state.get("head"):
        return False
    return state.get("tail") is None or tail_hash(path, offset) == state["tail"]


def _cell(name: str, cell: str | None) -> Any:
    """A cell as the model reads it: blanks and null tokens become None, and numbers in the
    plain spelling ``float()`` reads are converted here, once, so the model's own number
    parsing (which explains what is wrong with a cell) only sees the odd ones."""
    if cell is None:
        return None
    text = cell.strip()
    if len(text) <= LONGEST_NULL_TOKEN and text.lower() in NULL_TOKENS:
        return None
    if name in NUMERIC:
        try:
            number = float(text)
        except ValueError:
            return cell
        return number if math.isfinite(number) else cell
    return cell


@functools.lru_cache(maxsize=64)
def _canonical_names(headers: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(normalize_header(h) for h in headers)


class _LineReader:
    """Reads raw lines from a binary file, tracking the byte offset after each one."""

    def __init__(self, handle: IO[bytes], offset: int, *, hold_unterminated: bool = False) -> None:
        self.handle = handle
        self.offset = offset
        self.hold_unterminated = hold_unterminated
        self.held_back = False
        self.unterminated = False  # a settled last line without a line ending was read
        self.too_long = False
        self.bad_encoding = False

    def __iter__(self) -> Iterator[str]:
        while True:
            raw = self.handle.readline(MAX_LINE_BYTES)
            if not raw:
                return
            overlong = len(raw) >= MAX_LINE_BYTES and not raw.endswith(b"\n")
            if self.hold_unterminated and not overlong and not raw.endswith(b"\n"):
                self.held_back = True  # a writer may still be appending this line: next run
                return
            self.unterminated = not overlong and not raw.endswith(b"\n")
            if overlong:
                self.too_long = True
                while True:  # skip the rest of the overlong line without holding it in memory
                    rest = self.handle.readline(MAX_LINE_BYTES)
                    raw_len = len(rest)
                    self.offset += raw_len
                    if not rest or rest.endswith(b"\n"):
                        break
            self.offset += len(raw)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("utf-8", errors="replace")
                self.bad_encoding = True
            yield "" if overlong else text

    def reset(self) -> None:
        """Clear the flags once a record (which may span several lines) has been judged."""
        self.too_long = False
        self.bad_encoding = False


class CsvIngestion(BaseIngestion):
    name = "csv"
    model = CsvRow
    skip_not_newer = False
    drift_ignores_types = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.path = Path(self.settings.csv_path)
        self._observed_default = datetime.now(UTC)
        # headers whose drift has been observed: every row under one header has the same
        # columns, and CSV drift is about columns only (``drift_ignores_types``)
        self._headers_seen: set[tuple[str, ...]] = set()

    def unified(self, payload: Any, drift: list[DriftEvent]) -> UnifiedRecord:
        """A plainly written row under a header already seen is read directly; any other row
        goes through normalization, drift detection and the model, which explains what is wrong.
        Both give the same record: a property test holds them to it."""
        if isinstance(payload, dict):
            names = _canonical_names(tuple(payload))
            if names in self._headers_seen:
                fields = plain_fields(names, payload)
                if fields is not None:
                    return self._record(fields)
            else:
                self._headers_seen.add(names)  # the first row's drift is this header's drift
        return super().unified(payload, drift)

    def normalize(self, payload: Any) -> Any:
        if not isinstance(payload, dict):
            return payload
        names = _canonical_names(tuple(payload))
        data: dict[str, Any] = dict.fromkeys(_OPTIONAL)
        for name, cell in zip(names, payload.values(), strict=True):
            data[name] = _cell(name, cell)
        return data

    def record_id(self, payload: Any) -> str | None:
        if isinstance(payload, dict):
            for header, cell in payload.items():
                if normalize_header(header) == "symbol" and cell:
                    return str(cell)[:255]
        return None

    def to_unified(self, item: CsvRow) -> UnifiedRecord:
        return self._record(item.__dict__)  # a model's __dict__ holds exactly its fields

    def _record(self, row: dict[str, Any]) -> UnifiedRecord:
        """Valid CSV fields (by canonical name) as a unified record."""
        symbol, name, rank = row["symbol"], row["name"], row["rank"]
        coin_id = row["coin_id"] or f"{symbol.lower()}-{normalize_name(name)}"
        if not coin_id.strip("-"):
            raise RecordValidationError("cannot derive an id from symbol and name")
        return UnifiedRecord(
            coin_id=coin_id,
            symbol=symbol.upper(),
            name=name,
            rank=int(rank) if rank is not None else None,
            price_usd=row["price_usd"],
            market_cap_usd=row["market_cap_usd"] or None,  # the history layout writes 0 for unknown
            volume_24h_usd=row["volume_24h_usd"],
            circulating_supply=row["circulating_supply"],
            total_supply=row["total_supply"],
            max_supply=row["max_supply"],
            percent_change_24h=row["percent_change_24h"],
            source_updated_at=as_utc(row["last_updated"]) or self._observed_default,
            open_usd=row["open_usd"],
            high_usd=row["high_usd"],
            low_usd=row["low_usd"],
        )

    def fetch(self, checkpoint: EtlCheckpoint | None) -> Iterator[FetchedBatch]:
        if not self.path.exists():
            write_sample_csv(self.path)
            log.warning(
                "CSV file not found; wrote a labelled sample file", extra={"path": str(self.path)}
            )
        identity = file_identity(self.path)
        self._observed_default = datetime.fromtimestamp(os.stat(self.path).st_mtime, UTC).replace(
            microsecond=0
        )
        state: dict[str, Any] = (
            dict(checkpoint.state) if checkpoint and isinstance(checkpoint.state, dict) else {}
        )
        start = int(state.get("offset", 0))
        if state and not _same_file(state, self.path):
            log.warning(
                "CSV file was replaced or rewritten; reprocessing it from the start",
                extra={"path": str(self.path)},
            )
            start = 0
        # a last line without a newline in a file written moments ago may still be growing
        settling = time.time() - os.stat(self.path).st_mtime < SETTLE_SECONDS
        with self.path.open("rb") as handle:
            header, header_end = self._read_header(handle)
            if header is None:
                return
            handle.seek(max(start, header_end))
            yield from self._batches(handle, header, max(start, header_end), identity, settling)

    def _read_header(self, handle: IO[bytes]) -> tuple[list[str] | None, int]:
        offset = 0
        while True:
            raw = handle.readline(MAX_LINE_BYTES)
            if not raw:
                return None, offset
            offset += len(raw)
            # a stray CR inside the header means nothing in a column name
            text = raw.decode("utf-8-sig", errors="replace").replace("\r", "").strip()
            if text and not text.startswith("#"):
                try:
                    return next(csv.reader([text])), offset
                except csv.Error as exc:
                    raise FatalSourceError(
                        f"CSV header of {self.path.name} is unreadable: {exc}"
                    ) from exc

    def _batches(
        self,
        handle: IO[bytes],
        header: list[str],
        offset: int,
        identity: dict[str, Any],
        settling: bool,
    ) -> Iterator[FetchedBatch]:
        lines = _LineReader(handle, offset, hold_unterminated=settling)
        batch: list[Any] = []
        bad: list[QuarantinedRecord] = []
        reader = csv.reader(lines)
        while True:
            try:
                row = next(reader)
                problem = None
            except StopIteration:
                break
            except csv.Error as exc:
                row, problem = [], f"unparseable CSV: {exc}"
            too_long, bad_encoding = lines.too_long, lines.bad_encoding
            lines.reset()
            if problem:
                pass
            elif too_long:
                problem = f"line longer than {MAX_LINE_BYTES} bytes"
            elif bad_encoding:
                problem = "line is not valid UTF-8"
            elif (
                not row or (len(row) == 1 and not row[0].strip()) or row[0].lstrip().startswith("#")
            ):
                continue
            elif len(row) != len(header):
                problem = f"expected {len(header)} fields, got {len(row)}"
            if problem:
                bad.append(
                    QuarantinedRecord(
                        None,
                        {"offset": lines.offset, "cells": [c[:200] for c in row[:50]]},
                        problem,
                    )
                )
            else:
                batch.append(dict(zip(header, row, strict=True)))
            if len(batch) + len(bad) >= self.settings.batch_size:
                yield FetchedBatch(batch, self._state(identity, lines.offset), bad)
                batch, bad = [], []
        if lines.unterminated:
            # many writers omit the last newline; but a file cut mid-line by a crashed writer
            # looks the same, and a cut row that still parses cannot be told from a whole one
            log.warning(
                "the CSV file's last line has no line ending; it was read as a complete row",
                extra={"path": str(self.path), "offset": lines.offset},
            )
        if batch or bad:
            yield FetchedBatch(batch, self._state(identity, lines.offset), bad)

    def _state(self, identity: dict[str, Any], offset: int) -> dict[str, Any]:
        return {
            **identity,
            "path": str(self.path),
            "offset": offset,
            "tail": tail_hash(self.path, offset),
            "last_value": f"{self.path.name}@{offset}",
        }
