"""Weak ETags and If-None-Match lists, cache keys that follow breakers and the history window, long cursors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from kasparro.api.cache import etag_matches
from kasparro.api.history import aligned_window, now_bucket_end, window_cache_token
from kasparro.db.models import Asset, CircuitBreaker, UnifiedCrypto
from tests.api.conftest import NOW, ClientFactory, Seeded, TestClient


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        ('W/"k1"', True),
        ('"k1"', True),
        ('"other", W/"k1"', True),
        ('"a",W/"b" ,  "k1"', True),
        ("*", True),
        ('"other"', False),
        ('W/"k12"', False),
        ("k1", False),
        ("", False),
        (None, False),
    ],
)
def test_if_none_match_is_a_list_compared_weakly(header: str | None, matches: bool) -> None:
    assert etag_matches(header, "k1") is matches


@pytest.mark.parametrize("cache_entries", [2048, 0], ids=["cache-hit", "cache-miss"])
def test_etags_are_weak_and_lists_give_304(
    make_client: ClientFactory, seeded: Seeded, cache_entries: int
) -> None:
    client = make_client(cache_max_entries=cache_entries)
    first = client.get("/data", params={"limit": 3})
    etag = first.headers["etag"]
    assert etag.startswith('W/"')
    assert etag.endswith('"')
    for header in (etag, etag[2:], f'"nope", {etag}', "*"):
        again = client.get("/data", params={"limit": 3}, headers={"If-None-Match": header})
        assert again.status_code == 304, header
        assert again.headers["etag"] == etag
        assert again.content == b""
    assert (
        client.get("/data", params={"limit": 3}, headers={"If-None-Match": '"nope"'}).status_code
        == 200
    )


def test_a_breaker_change_invalidates_cached_stats(
    client: TestClient, engine: Engine, seeded: Seeded
) -> None:
    before = client.get("/stats")
    by_source = {s["source"]: s for s in before.json()["sources"]}
    assert by_source["coingecko"]["circuit_breaker"]["state"] == "open"
    assert client.get("/stats").headers["x-cache"] == "hit"
    with (
        engine.begin() as conn
    ):  # what the breaker does when a probe succeeds: no data version bump
        conn.execute(
            sa.update(CircuitBreaker)
            .where(CircuitBreaker.source == "coingecko")
            .values(
                state="closed",
                consecutive_failures=0,
                opened_at=None,
                updated_at=NOW + timedelta(hours=1),
            )
        )
    after = client.get("/stats", headers={"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200
    assert after.headers["x-cache"] == "miss"
    by_source = {s["source"]: s for s in after.json()["sources"]}
    assert by_source["coingecko"]["circuit_breaker"]["state"] == "closed"


@pytest.mark.parametrize(
    ("start", "end", "interval", "expected"),
    [
        (
            "2024-06-01T06:10:00",
            "2024-06-01T11:05:00",
            "1h",
            ("2024-06-01T06:00", "2024-06-01T12:00"),
        ),
        (
            "2024-06-01T06:00:00",
            "2024-06-01T12:00:00",
            "1h",
            ("2024-06-01T06:00", "2024-06-01T12:00"),
        ),
        (
            "2024-05-30T13:00:00",
            "2024-06-01T00:00:01",
            "1d",
            ("2024-05-30T00:00", "2024-06-02T00:00"),
        ),
        (None, None, "1h", ("2024-05-25T13:00", "2024-06-01T13:00")),
        (None, None, "1d", ("2024-03-04T00:00", "2024-06-02T00:00")),
    ],
)
def test_history_window_is_aligned_to_the_interval(
    start: str | None, end: str | None, interval: str, expected: tuple[str, str]
) -> None:
    def parse(text: str | None) -> datetime | None:
        return datetime.fromisoformat(text).replace(tzinfo=UTC) if text else None

    now = datetime(2024, 6, 1, 12, 34, 56, tzinfo=UTC)
    begin, stop = aligned_window(parse(start), parse(end), interval, now=now)
    assert (begin.isoformat()[:16], stop.isoformat()[:16]) == expected


def test_history_without_to_ends_at_the_current_bucket_and_keys_the_cache_by_it(
    client: TestClient, seeded: Seeded
) -> None:
    body = client.get("/assets/1/history", params={"interval": "1h"}).json()
    end = datetime.fromisoformat(body["end"])
    assert end == now_bucket_end("1h")
    assert end.minute == end.second == 0
    assert (
        window_cache_token("/assets/1/history", b"interval=1d") == now_bucket_end("1d").isoformat()
    )
    assert window_cache_token("/assets/1/history", b"to=2024-01-01T00:00:00Z") == ""
    assert window_cache_token("/data", b"") == ""


FOUR_BYTE_CHAR = "\U0001d505"  # 4 bytes in UTF-8


def test_walking_pages_sorted_by_long_non_ascii_names(client: TestClient, engine: Engine) -> None:
    names = [
        prefix + "é" * 120 + FOUR_BYTE_CHAR * 100 + f"{index:03d}"
        for index in range(9)
        for prefix in ("Ω", "Ä")
    ]
    with engine.begin() as conn:
        for index, name in enumerate(names, start=1):
            conn.execute(
                sa.insert(Asset).values(
                    id=index, symbol=f"S{index}", name=name[:255], match_key=f"k{index}"
                )
            )
            conn.execute(
                sa.insert(UnifiedCrypto).values(
                    asset_id=index,
                    source="csv",
                    coin_id=f"c{index}",
                    symbol=f"S{index}",
                    name=name[:255],
                    ingested_at=NOW,
                )
            )
    for sort in ("name", "-name"):
        seen: list[int] = []
        params: dict[str, Any] = {"sort": sort, "limit": 4}
        while True:
            response = client.get("/data", params=params)
            assert response.status_code == 200, response.text
            body = response.json()
            seen += [row["id"] for row in body["data"]]
            cursor = body["pagination"]["next_cursor"]
            if cursor is None:
                break
            assert len(cursor) > 512
            params["cursor"] = cursor
        full = [
            row["id"]
            for row in client.get("/data", params={"sort": sort, "limit": 500}).json()["data"]
        ]
        assert seen == full
        assert len(set(seen)) == len(names)


def test_totals_are_counted_once_per_data_version(
    client: TestClient, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kasparro.db import queries

    counted: list[int | None] = []
    original = queries.page_of

    def spy(*args: Any, **kwargs: Any) -> queries.Page:
        counted.append(kwargs.get("total"))
        return original(*args, **kwargs)

    monkeypatch.setattr(queries, "page_of", spy)
    first = client.get("/data", params={"limit": 5, "sort": "id"}).json()
    second = client.get(
        "/data", params={"limit": 5, "sort": "id", "cursor": first["pagination"]["next_cursor"]}
    ).json()
    assert counted == [None, seeded.unified_rows], "the second page reuses the first page's count"
    assert second["pagination"]["total"] == first["pagination"]["total"] == seeded.unified_rows
