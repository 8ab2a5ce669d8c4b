"""Identity resolution: one canonical asset per real-world coin, across sources.

Order of evidence: the ``(source, coin_id)`` mapping already stored; then symbol plus normalized
name. A symbol alone never merges two coins. When a source lists two coins with the same symbol
and name, the second gets an asset of its own, flagged for review: a missed merge can be fixed
later, a wrong one corrupts both coins' data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, select

from kasparro.db.bulk import BulkWriter
from kasparro.db.models import Asset, AssetSource, utcnow
from kasparro.db.repository import chunks
from kasparro.schemas.unified import match_key


@dataclass(frozen=True)
class Identity:
    coin_id: str
    symbol: str
    name: str


class IdentityResolver:
    """Maps one source's coin ids to asset ids, creating assets and mappings as needed."""

    def __init__(self, engine: Engine, source: str) -> None:
        self.engine = engine
        self.source = source
        self.cache: dict[str, int] = {}
        self._pending: dict[str, int] = {}
        self._complete = False  # True once preload() has read every stored mapping of the source
        self.created = 0
        self.flagged = 0

    def preload(self, conn: Connection) -> None:
        rows = conn.execute(
            select(AssetSource.coin_id, AssetSource.asset_id).where(
                AssetSource.source == self.source
            )
        )
        self.cache.update(dict(rows.all()))
        self._complete = True

    def resolve(self, identities: Sequence[Identity], *, conn: Connection) -> dict[str, int]:
        """coin_id → asset_id for every identity, inside the caller's transaction.

        Mappings made here stay pending until :meth:`commit` (call it after the transaction
        commits), so a rolled-back batch never leaves ids of assets that do not exist in the cache.
        """
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

    def _not_yet_mapped(self, conn: Connection, identities: list[Identity]) -> list[Identity]:
        for part in chunks([i.coin_id for i in identities], 900):
            query = select(AssetSource.coin_id, AssetSource.asset_id).where(
                AssetSource.source == self.source, AssetSource.coin_id.in_(part)
            )
            self._pending.update(dict(conn.execute(query).all()))
        return [i for i in identities if i.coin_id not in self._pending]

    def commit(self) -> None:
        self.cache.update(self._pending)
        self._pending.clear()

    def discard(self) -> None:
        self._pending.clear()

    def _resolve_missing(self, conn: Connection, identities: list[Identity]) -> None:
        """Map coin ids that are not in the cache. After :meth:`preload` (done by every run, which
        holds the source's lock) the cache is complete, so only new coins arrive here; without it,
        stored mappings are looked up first."""
        pending = identities if self._complete else self._not_yet_mapped(conn, identities)
        if not pending:
            return
        keys = {i.coin_id: match_key(i.symbol, i.name) for i in pending}
        by_key = self._assets_by_key(conn, set(keys.values()))
        taken = self._assets_mapped_here(conn, set(by_key.values()))
        symbols = self._assets_by_symbol(conn, {_symbol(i.symbol) for i in pending})
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
                same_symbol: list[object] = symbols.setdefault(_symbol(identity.symbol), [])
                reason = (
                    f"symbol shared with {', '.join(map(str, same_symbol[:5]))} whose names differ; not merged"
                    if same_symbol
                    else None
                )
                new_assets[key] = self._asset_row(identity, key, reason)
                same_symbol.append(f"{self.source}:{identity.coin_id}")
            links[identity.coin_id] = key
        bulk = BulkWriter(conn)
        now = bulk.timestamp(utcnow())
        if new_assets:
            bulk.insert_assets([(*row, now) for row in new_assets.values()])
            self.created += len(new_assets)
            self.flagged += sum(1 for row in new_assets.values() if row[3])
            by_key.update(self._assets_by_key(conn, set(new_assets)))
        mappings = [
            (
                by_key[links[i.coin_id]],
                self.source,
                i.coin_id,
                _symbol(i.symbol),
                i.name.strip(),
                now,
            )
            for i in pending
        ]
        inserted = bulk.insert_asset_sources(mappings)
        self._pending.update({coin_id: asset_id for asset_id, _, coin_id, *_ in mappings})
        if inserted != len(mappings):  # another writer mapped some of these first: theirs stand
            for part in chunks([i.coin_id for i in pending], 900):
                query = select(AssetSource.coin_id, AssetSource.asset_id).where(
                    AssetSource.source == self.source, AssetSource.coin_id.in_(part)
                )
                self._pending.update(dict(conn.execute(query).all()))

    @staticmethod
    def _asset_row(identity: Identity, key: str, flag_reason: str | None) -> tuple[Any, ...]:
        return (
            _symbol(identity.symbol),
            identity.name.strip(),
            key,
            flag_reason is not None,
            flag_reason,
        )

    def _assets_by_key(self, conn: Connection, keys: set[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for part in chunks(sorted(keys), 900):
            query = select(Asset.match_key, Asset.id).where(Asset.match_key.in_(part))
            found.update(dict(conn.execute(query).all()))
        return found

    def _assets_mapped_here(self, conn: Connection, asset_ids: set[int]) -> set[int]:
        taken: set[int] = set()
        for part in chunks(sorted(asset_ids), 900):
            taken.update(
                conn.execute(
                    select(AssetSource.asset_id).where(
                        AssetSource.source == self.source, AssetSource.asset_id.in_(part)
                    )
                ).scalars()
            )
        return taken

    def _assets_by_symbol(self, conn: Connection, symbols: set[str]) -> dict[str, list[object]]:
        found: dict[str, list[object]] = {}
        for part in chunks(sorted(symbols), 900):
            for symbol, asset_id in conn.execute(
                select(Asset.symbol, Asset.id).where(Asset.symbol.in_(part))
            ):
                found.setdefault(symbol, []).append(asset_id)
        return found


def _symbol(symbol: str) -> str:
    return symbol.strip().upper()
