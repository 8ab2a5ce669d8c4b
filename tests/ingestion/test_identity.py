"""Identity resolution: one asset per real coin across sources; never merged on symbol alone."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from kasparro.ingestion.identity import Identity, IdentityResolver
from kasparro.schemas.unified import match_key, normalize_name
from tests.conftest import count_rows


def _assets(engine: Engine) -> dict[int, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT id, symbol, name, match_key, flagged, flag_reason FROM asset")
        ).mappings()
        return {row["id"]: dict(row) for row in rows}


def _resolve(resolver: IdentityResolver, identities: list[Identity]) -> dict[str, int]:
    """Resolve in a transaction of its own, as one ingest batch does."""
    with resolver.engine.begin() as conn:
        found = resolver.resolve(identities, conn=conn)
    resolver.commit()
    return found


@pytest.mark.parametrize(
    ("name", "normalized"),
    [
        ("Bitcoin", "bitcoin"),
        (" BitCoin ", "bitcoin"),
        ("Bit-Coin!", "bitcoin"),
        ("Crypto.com Coin", "cryptocomcoin"),
        ("Ćardano", "cardano"),
        ("比特币", "比特币"),
    ],
)
def test_normalize_name(name: str, normalized: str) -> None:
    assert normalize_name(name) == normalized


@pytest.mark.parametrize(
    ("left", "right", "same"),
    [
        (("btc", "Bitcoin"), ("BTC", "bitcoin"), True),
        (("BTC", "Bitcoin"), (" btc ", "Bit coin"), True),
        (("BTC", "Bitcoin"), ("BTC", "Bitcoin Cash"), False),
        (("USDT", "Tether"), ("USDT", "Bridged Tether"), False),
        (("ETH", "Ethereum"), ("ETHW", "Ethereum"), False),
    ],
)
def test_match_key(left: tuple[str, str], right: tuple[str, str], same: bool) -> None:
    assert (match_key(*left) == match_key(*right)) is same


def test_source_id_mapping_is_reused(engine: Engine) -> None:
    first = IdentityResolver(engine, "coingecko")
    ids = _resolve(first, [Identity("bitcoin", "btc", "Bitcoin")])
    # a later resolver (a new run) finds the stored mapping even when the name changed upstream
    second = IdentityResolver(engine, "coingecko")
    again = _resolve(second, [Identity("bitcoin", "btc", "Bitcoin (renamed)")])
    assert again == ids
    with engine.connect() as conn:
        second.preload(conn)
    assert second.cache == {"bitcoin": ids["bitcoin"]}
    assert count_rows(engine, "asset") == 1
    assert count_rows(engine, "asset_source") == 1
    assert second.created == 0


def test_bitcoin_from_three_sources_is_one_asset(engine: Engine) -> None:
    resolved = [
        _resolve(IdentityResolver(engine, "coingecko"), [Identity("bitcoin", "btc", "Bitcoin")]),
        _resolve(
            IdentityResolver(engine, "coinpaprika"), [Identity("btc-bitcoin", "BTC", "Bitcoin")]
        ),
        _resolve(IdentityResolver(engine, "csv"), [Identity("btc-bitcoin", "BTC", "Bitcoin")]),
    ]
    asset_ids = {next(iter(r.values())) for r in resolved}
    assert len(asset_ids) == 1
    assets = _assets(engine)
    assert len(assets) == 1
    (asset,) = assets.values()
    assert (asset["symbol"], asset["name"], bool(asset["flagged"])) == ("BTC", "Bitcoin", False)
    with engine.connect() as conn:
        links = conn.execute(
            sa.text("SELECT source, coin_id, asset_id FROM asset_source ORDER BY source")
        ).all()
    assert [(s, c) for s, c, _ in links] == [
        ("coingecko", "bitcoin"),
        ("coinpaprika", "btc-bitcoin"),
        ("csv", "btc-bitcoin"),
    ]
    assert {a for _, _, a in links} == asset_ids


def test_two_coins_sharing_a_symbol_in_separate_batches_are_two_assets(engine: Engine) -> None:
    resolver = IdentityResolver(engine, "coingecko")
    first = _resolve(resolver, [Identity("tether", "usdt", "Tether")])
    second = _resolve(resolver, [Identity("bridged-tether", "usdt", "Bridged Tether")])
    assert first["tether"] != second["bridged-tether"]
    assets = _assets(engine)
    assert len(assets) == 2
    assert not assets[first["tether"]]["flagged"]
    flagged = assets[second["bridged-tether"]]
    assert flagged["flagged"]
    assert "symbol shared" in flagged["flag_reason"]
    assert resolver.flagged == 1


def test_two_coins_sharing_a_symbol_in_one_batch_flag_the_second(engine: Engine) -> None:
    resolver = IdentityResolver(engine, "coingecko")
    ids = _resolve(
        resolver,
        [
            Identity("tether", "usdt", "Tether"),
            Identity("bridged-tether", "usdt", "Bridged Tether"),
        ],
    )
    assert ids["tether"] != ids["bridged-tether"]
    assets = _assets(engine)
    assert len(assets) == 2
    assert not assets[ids["tether"]]["flagged"]
    assert assets[ids["bridged-tether"]]["flagged"]


@pytest.mark.parametrize("one_batch", [True, False])
def test_same_source_listing_one_symbol_and_name_twice_is_flagged_not_merged(
    engine: Engine, one_batch: bool
) -> None:
    resolver = IdentityResolver(engine, "coinpaprika")
    first, second = Identity("hot-holo", "HOT", "Holo"), Identity("hot-hotnow", "HOT", "Holo")
    if one_batch:
        ids = _resolve(resolver, [first, second])
    else:
        ids = {**_resolve(resolver, [first]), **_resolve(resolver, [second])}
    assert ids["hot-holo"] != ids["hot-hotnow"]
    assets = _assets(engine)
    assert len(assets) == 2
    assert not assets[ids["hot-holo"]]["flagged"]
    assert assets[ids["hot-hotnow"]]["flagged"]
    assert "ambiguous" in assets[ids["hot-hotnow"]]["flag_reason"]
    # another source's Holo still joins the first (unflagged) asset
    other = _resolve(IdentityResolver(engine, "coingecko"), [Identity("holotoken", "hot", "Holo")])
    assert other["holotoken"] == ids["hot-holo"]


@pytest.mark.parametrize(
    ("gecko", "paprika"),
    [
        (Identity("bitcoin", "btc", "Bitcoin"), Identity("btc-bitcoin-cash", "BTC", "Bitcoin Cash")),
        (Identity("tether", "usdt", "Tether"), Identity("usdt-tether-gold", "USDT", "Tether Gold")),
        (Identity("ethereum", "eth", "Ethereum"), Identity("ethw-ethereum", "ETHW", "Ethereum")),
    ],
)  # fmt: skip
def test_symbol_alone_never_merges(engine: Engine, gecko: Identity, paprika: Identity) -> None:
    a = _resolve(IdentityResolver(engine, "coingecko"), [gecko])[gecko.coin_id]
    b = _resolve(IdentityResolver(engine, "coinpaprika"), [paprika])[paprika.coin_id]
    assert a != b
    assert count_rows(engine, "asset") == 2


def test_explicit_connection_joins_the_callers_transaction(engine: Engine) -> None:
    resolver = IdentityResolver(engine, "csv")
    with engine.connect() as conn:
        trans = conn.begin()
        resolver.resolve([Identity("btc-bitcoin", "BTC", "Bitcoin")], conn=conn)
        trans.rollback()
    resolver.discard()
    assert count_rows(engine, "asset") == 0
    # the rolled-back mapping is not remembered: resolving again creates the asset for real
    _resolve(resolver, [Identity("btc-bitcoin", "BTC", "Bitcoin")])
    assert count_rows(engine, "asset") == 1


def test_concurrent_sources_resolving_the_same_coins_create_no_duplicates(
    engine: Engine,
) -> None:
    coins = [(f"SYM{i}", f"Coin Number {i}") for i in range(200)]
    per_source = {
        "coingecko": [Identity(f"coin-{i}", s.lower(), n) for i, (s, n) in enumerate(coins)],
        "coinpaprika": [Identity(f"s{i}-coin", s, n) for i, (s, n) in enumerate(coins)],
    }
    start = threading.Barrier(2)
    results: dict[str, dict[str, int]] = {}
    errors: list[BaseException] = []

    def work(source: str) -> None:
        try:
            resolver = IdentityResolver(engine, source)
            start.wait(timeout=30)
            found: dict[str, int] = {}
            for offset in range(0, 200, 50):  # several batches, interleaving with the other thread
                found.update(_resolve(resolver, per_source[source][offset : offset + 50]))
            results[source] = found
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in per_source]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert count_rows(engine, "asset") == 200
    assert count_rows(engine, "asset_source") == 400
    gecko, paprika = results["coingecko"], results["coinpaprika"]
    assert [gecko[f"coin-{i}"] for i in range(200)] == [paprika[f"s{i}-coin"] for i in range(200)]
    assert not any(a["flagged"] for a in _assets(engine).values())


def test_symbol_collision_is_flagged_even_when_the_key_map_missed_the_other_asset(
    engine: Engine,
) -> None:
    """On PostgreSQL another source's asset can commit with an id below one this run has already
    read past; the symbol check must still see it."""
    resolver = IdentityResolver(engine, "coingecko")
    with engine.connect() as conn:
        resolver.preload(conn)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO asset (id, symbol, name, match_key, flagged, created_at) "
                "VALUES (1000, 'XYZ', 'Xyz', 'XYZ|xyz', false, CURRENT_TIMESTAMP)"
            )
        )
    _resolve(resolver, [Identity("xyz", "xyz", "Xyz")])  # the run has now read up to id 1000
    with engine.begin() as conn:  # committed later, with a lower id
        conn.execute(
            sa.text(
                "INSERT INTO asset (id, symbol, name, match_key, flagged, created_at) "
                "VALUES (5, 'ABC', 'Alpha', 'ABC|alpha', false, CURRENT_TIMESTAMP)"
            )
        )
    ids = _resolve(resolver, [Identity("abc-beta", "abc", "Beta")])
    flagged = _assets(engine)[ids["abc-beta"]]
    assert flagged["flagged"]
    assert "symbol shared with 5" in flagged["flag_reason"]
