"""Identity resolution: one canonical asset per real-world coin, across sources.

Order of evidence: the ``(source, coin_id)`` mapping already stored; then symbol plus normalized
name. A symbol alone never merges two coins. When a source lists two coins with the same symbol
and name, the second gets an asset of its own, flagged for review: a missed merge can be fixed
later, a wrong one corrupts both coins' data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, select

from kasparro.db.bulk import BulkWriter
from kasparro.db.models import AssetSource, utcnow
from kasparro.schemas.unified import match_key


class Identity(NamedTuple):
    """How one source names one coin (a tuple: a first load builds one per record)."""

    coin_id: str
    symbol: str
    name: str


class IdentityResolver:
    """Maps one source's coin ids to asset ids, creating assets and mappings as needed.

    What it learns inside a transaction (mappings, and the match keys of assets it read or
    created) stays pending until :meth:`commit`; :meth:`discard` forgets it, so a rolled
    back batch never leaves ids of assets that do not exist.
    """

    def __init__(self, engine: Engine, source: str) -> None:
        self.engine = engine
        self.source = source
        self.cache: dict[str, int] = {}  # coin_id -> asset_id for this source
        self._pending: dict[str, int] = {}
        self._complete = False  # True once preload() has read every stored mapping of the source
        self._mapped: set[int] = set()  # asset ids this source maps to (complete with the cache)
        # every asset's match key, read once when the first new coin arrives and then kept
        # current by reading only assets with a higher id (see _sync_assets)
        self._keys: dict[str, int] = {}
        self._synced_id = 0
        self._pending_keys: dict[str, int] = {}
        self._pending_synced_id = 0
        self.created = 0
        self.flagged = 0

    def preload(self, conn: Connection) -> None:
        rows = conn.execute(
            select(AssetSource.coin_id, AssetSource.asset_id).where(
                AssetSource.source == self.source
            )
        )
        self.cache.update(dict(rows.all()))
        self._mapped.update(self.cache.values())
        self._complete = True

    def resolve(self, identities: Sequence[Identity], *, conn: Connection) -> dict[str, int]:
        """coin_id → asset_id for every identity, inside the caller's transaction (call
        :meth:`commit` after it commits, :meth:`discard` if it does not)."""
        missing = [
            i
            for i in {i.coin_id: i for i in identities}.values()
            if i.coin_id not in self.cache and i.coin_id not in self._pending
        ]
        if missing:
            self._resolve_missing(conn, missing)
        return {
            i.coin_id: self.cache.get(i.coin_id) or self._pending[i.coin_id] for i in identities
        }

    def commit(self) -> None:
        self.cache.update(self._pending)
        self._mapped.update(self._pending.values())
        self._keys.update(self._pending_keys)
        self._synced_id = max(self._synced_id, self._pending_synced_id)
        self.discard()

    def discard(self) -> None:
        self._pending.clear()
        self._pending_keys.clear()
        self._pending_synced_id = 0

    def _not_yet_mapped(self, bulk: BulkWriter, identities: list[Identity]) -> list[Identity]:
        rows = bulk.select_in(
            "SELECT coin_id, asset_id FROM asset_source WHERE source = ? AND coin_id",
            [i.coin_id for i in identities],
            first=(self.source,),
        )
        self._pending.update(dict(rows))
        return [i for i in identities if i.coin_id not in self._pending]

    def _resolve_missing(self, conn: Connection, identities: list[Identity]) -> None:
        """Map coin ids that are not in the cache. After :meth:`preload` (done by every run, which
        holds the source's lock) the cache is complete, so only new coins arrive here; without it,
        stored mappings are looked up first."""
        bulk = BulkWriter(conn)
        pending = identities if self._complete else self._not_yet_mapped(bulk, identities)
        if not pending:
            return
        self._sync_assets(conn)
        pending = [Identity(i.coin_id, _symbol(i.symbol), i.name.strip()) for i in pending]
        keys = {i.coin_id: match_key(i.symbol, i.name) for i in pending}
        by_key = {key: asset_id for key in keys.values() if (asset_id := self._key(key))}
        taken = self._assets_mapped_here(bulk, set(by_key.values()))
        # assets already using the symbols of the coins that may get an asset of their own: read
        # from the database, not the key map, which a concurrent PostgreSQL writer can outrun
        symbols = self._assets_by_symbol(
            bulk, {i.symbol for i in pending if keys[i.coin_id] not in by_key}
        )
        links: dict[str, str] = {}  # coin_id -> match_key of the asset it maps to
        new_assets: dict[str, tuple[Any, ...]] = {}
        for identity in pending:
            key = keys[identity.coin_id]
            asset_id = by_key.get(key)
            if asset_id is not None and asset_id not in taken:
                taken.add(asset_id)
            elif asset_id is not None or key in new_assets:
                other = asset_id if asset_id is not None else "created in this batch"
                reason: str | None = (
                    f"ambiguous: {self.source} lists another coin with the same symbol and name ({other})"
                )
                key = f"{key}#{self.source}:{identity.coin_id}"
                new_assets[key] = self._asset_row(identity, key, reason)
            else:
                same_symbol = symbols.setdefault(identity.symbol, [])
                reason = (
                    f"symbol shared with {', '.join(map(str, same_symbol[:5]))} whose names differ; not merged"
                    if same_symbol
                    else None
                )
                new_assets[key] = self._asset_row(identity, key, reason)
                same_symbol.append(f"{self.source}:{identity.coin_id}")
            links[identity.coin_id] = key
        now = bulk.timestamp(utcnow())
        if new_assets:
            by_key.update(self._create_assets(conn, bulk, new_assets, now))
        source = self.source
        mappings = [
            (by_key[links[i.coin_id]], source, i.coin_id, i.symbol, i.name, now) for i in pending
        ]
        inserted = bulk.insert_asset_sources(mappings)
        self._pending.update({coin_id: asset_id for asset_id, _, coin_id, *_ in mappings})
        if inserted != len(mappings):  # another writer mapped some of these first: theirs stand
            self._not_yet_mapped(bulk, pending)

    def _create_assets(
        self, conn: Connection, bulk: BulkWriter, rows: dict[str, tuple[Any, ...]], now: Any
    ) -> dict[str, int]:
        """Insert new assets; returns match_key → id, including keys a concurrent writer created
        first (theirs stand, and these coins join them). Rows go in match-key order, so two
        sources inserting overlapping keys lock them in the same order and cannot deadlock."""
        created = bulk.insert_assets([(*rows[key], now) for key in sorted(rows)])
        self.created += len(created)
        self.flagged += sum(1 for key in created if rows[key][3])
        self._pending_keys.update(created)
        if created and conn.dialect.name == "sqlite":
            # the write lock has been held since this transaction's _sync_assets, so no other
            # writer can have added an asset in between: the next sync can start after these
            self._pending_synced_id = max(self._pending_synced_id, *created.values())
        raced = [key for key in rows if key not in created]
        if raced:
            found = bulk.select_in("SELECT match_key, id FROM asset WHERE match_key", raced)
            created = {**created, **dict(found)}
            self._pending_keys.update(dict(found))
        return created

    def _sync_assets(self, conn: Connection) -> None:
        """Read the match keys of assets created since the last sync (all of them the first time). Asset ids only grow, so "id above the last one seen" is the delta; a key
        missed by it (a concurrent PostgreSQL writer committing out of id order) still resolves
        correctly through the unique match key when this resolver tries to create it."""
        since = max(self._synced_id, self._pending_synced_id)
        rows = BulkWriter(conn).select_after("SELECT id, match_key FROM asset WHERE id", since)
        self._pending_keys.update((key, asset_id) for asset_id, key in rows)
        self._pending_synced_id = max(since, *(asset_id for asset_id, _ in rows), 0)

    def _key(self, key: str) -> int | None:
        return self._pending_keys.get(key) or self._keys.get(key)

    @staticmethod
    def _assets_by_symbol(bulk: BulkWriter, symbols: set[str]) -> dict[str, list[object]]:
        """symbol → ids of the assets using it."""
        found: dict[str, list[object]] = {}
        for symbol, asset_id in bulk.select_in(
            "SELECT symbol, id FROM asset WHERE symbol", sorted(symbols)
        ):
            found.setdefault(symbol, []).append(asset_id)
        return found

    def _assets_mapped_here(self, bulk: BulkWriter, asset_ids: set[int]) -> set[int]:
        """Which of these assets this source already maps a coin to."""
        if self._complete:
            pending = set(self._pending.values())
            return {a for a in asset_ids if a in self._mapped or a in pending}
        rows = bulk.select_in(
            "SELECT asset_id FROM asset_source WHERE source = ? AND asset_id",
            sorted(asset_ids),
            first=(self.source,),
        )
        return {asset_id for (asset_id,) in rows}

    @staticmethod
    def _asset_row(identity: Identity, key: str, flag_reason: str | None) -> tuple[Any, ...]:
        """``identity`` with its symbol and name already cleaned."""
        return (identity.symbol, identity.name, key, flag_reason is not None, flag_reason)


def _symbol(symbol: str) -> str:
    return symbol.strip().upper()
