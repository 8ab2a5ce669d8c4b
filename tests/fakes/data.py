"""Deterministic fake market data: one world of coins rendered as CoinPaprika, CoinGecko and CSV rows."""

from __future__ import annotations

import csv
import random
import re
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

DEFAULT_UPDATED_AT = datetime(2025, 2, 9, 17, 44, 4, 143000, tzinfo=UTC)
IMAGE_BUSTER = "1696501400"

KAGGLE_HEADER = [
    "SNo",
    "Name",
    "Symbol",
    "Date",
    "High",
    "Low",
    "Open",
    "Close",
    "Volume",
    "Marketcap",
]
UNIFIED_HEADER = [
    "symbol", "name", "price_usd", "market_cap_usd", "volume_24h_usd", "circulating_supply",
    "total_supply", "max_supply", "percent_change_24h", "rank", "last_updated",
]  # fmt: skip


def _d(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass(frozen=True)
class WorldCoin:
    """One coin as it "really" is; every source renders it in its own shape."""

    gecko_id: str
    paprika_id: str
    symbol: str  # canonical upper case; may be non-ASCII
    name: str
    price: float
    circulating_supply: float | None  # None: unknown
    total_supply: float | None
    max_supply: float | None  # None: no cap / unknown
    volume_24h: float
    percent_change_24h: float
    ath: float | None  # None: unknown (Paprika nulls the ATH triple)
    ath_date: datetime | None
    atl: float
    atl_date: datetime
    first_data_at: datetime
    updated_at: datetime
    image_id: int
    rank: int = 0
    beta: float = 1.0
    gecko_nulls: bool = False  # trap: CoinGecko serves nulls in nearly every numeric field

    @property
    def market_cap(self) -> float:
        return self.price * (self.circulating_supply or 0.0)


# name, symbol, gecko id, paprika id, price, circulating, total, max, ath, ath date, atl, atl date, first data, image
_REAL: list[tuple[Any, ...]] = [
    ("Bitcoin", "BTC", "bitcoin", "btc-bitcoin", 96114.08481738689, 19_822_040, 19_822_050, 21_000_000, 108786.0, "2025-01-20T09:11:54", 67.81, "2013-07-06", "2010-07-17", 1),
    ("Ethereum", "ETH", "ethereum", "eth-ethereum", 2642.2421635443243, 120_535_801.66, 120_535_801.66, None, 4878.26, "2021-11-10T14:24:19", 0.432979, "2015-10-20", "2015-08-07", 279),
    ("Tether", "USDT", "tether", "usdt-tether", 1.000150209258716, 141_737_141_000, 141_737_141_000, None, 1.32, "2018-07-24T00:00:00", 0.572521, "2015-03-02", "2015-02-25", 325),
    ("BNB", "BNB", "binancecoin", "bnb-binance-coin", 621.53, 142_480_000, 142_480_000, 200_000_000, 788.84, "2024-12-04T10:35:25", 0.0398177, "2017-10-19", "2017-07-25", 825),
    ("Solana", "SOL", "solana", "sol-solana", 201.33, 487_060_000, 592_300_000, None, 293.31, "2025-01-19T11:15:27", 0.500801, "2020-05-11", "2020-04-10", 4128),
    ("XRP", "XRP", "ripple", "xrp-xrp", 2.4317, 57_800_000_000, 99_986_000_000, 100_000_000_000, 3.4, "2018-01-07T00:00:00", 0.00268621, "2014-05-22", "2013-08-04", 44),
    ("USD Coin", "USDC", "usd-coin", "usdc-usd-coin", 0.999912, 56_020_000_000, 56_020_000_000, None, 1.17, "2019-05-08T00:40:28", 0.877647, "2023-03-11", "2018-10-08", 6319),
    ("Cardano", "ADA", "cardano", "ada-cardano", 0.7012, 35_190_000_000, 44_990_000_000, 45_000_000_000, 3.09, "2021-09-02T06:00:10", 0.01925275, "2020-03-13", "2017-10-01", 975),
    ("Dogecoin", "DOGE", "dogecoin", "doge-dogecoin", 0.2598, 148_000_000_000, 148_000_000_000, None, 0.731578, "2021-05-08T05:08:23", 0.0000869, "2015-05-06", "2013-12-15", 5),
    ("TRON", "TRX", "tron", "trx-tron", 0.2412, 86_100_000_000, 86_100_000_000, None, 0.431288, "2024-12-04T00:10:40", 0.00180434, "2017-11-12", "2017-09-13", 1094),
    # traps: a second USDT, a CJK name and symbol, zero-width characters, a null-heavy row, a stale row
    ("Bridged USDT", "USDT", "bridged-usdt", "usdt-bridged-usdt", 0.9987, 52_000_000, 52_000_000, None, 1.04, "2024-03-05T00:00:00", 0.95, "2024-08-05", "2024-01-10", 35001),
    ("币安人生", "币安人生", "binance-life", "binancelife-binance-life", 0.1532, 1_000_000_000, 1_000_000_000, 1_000_000_000, 0.51, "2025-01-08T00:00:00", 0.01, "2024-11-02", "2024-11-01", 35002),
    ("\u200b\u200bStable", "STABLE", "stable-2", "stable-stable", 1.0004, 310_000_000, 310_000_000, None, 1.09, "2024-12-01T00:00:00", 0.97, "2024-12-03", "2024-11-20", 35003),
    ("Ghost Protocol", "GHOST", "ghost-protocol", "ghost-ghost-protocol", 0.0421, None, 5_000_000_000, None, None, None, 0.003, "2023-02-01", "2023-01-15", 35004),
    ("Dormant Finance", "DORM", "dormant-finance", "dorm-dormant-finance", 0.00351, 880_000_000, 0, None, None, None, 0.0011, "2022-06-01", "2021-05-05", 35005),
]  # fmt: skip
_STALE_IDS = {"dormant-finance": timedelta(hours=9)}
_SYLLABLES = ("ka", "zo", "ri", "vex", "lu", "mar", "ten", "qua", "bo", "syl", "dra", "nix", "pol", "fe", "ro", "tau", "gen", "or", "ily", "cor", "vin")  # fmt: skip
_SUFFIXES = ["", " Coin", " Token", " Network", " Protocol", " Finance", " Chain", " DAO"]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def coins(n: int, seed: int = 0, updated_at: datetime = DEFAULT_UPDATED_AT) -> list[WorldCoin]:
    """The first ``n`` coins of a seeded world, ordered by rank (market cap, descending)."""
    rng = random.Random(seed)
    out: list[WorldCoin] = []
    for row in _REAL[:n]:
        name, sym, gid, pid, price, circ, total, mx, ath, ath_d, atl, atl_d, first, img = row
        circ_v = None if circ is None else float(circ)
        out.append(
            WorldCoin(
                gecko_id=gid, paprika_id=pid, symbol=sym, name=name, price=price,
                circulating_supply=circ_v, total_supply=float(total) if total else None,
                max_supply=float(mx) if mx else None,
                volume_24h=price * (circ_v or 1e7) * rng.uniform(0.005, 0.04),
                percent_change_24h=round(rng.gauss(0, 3), 5),
                ath=ath, ath_date=_d(ath_d) if ath_d else None, atl=atl, atl_date=_d(atl_d),
                first_data_at=_d(first), updated_at=updated_at - _STALE_IDS.get(gid, timedelta()),
                image_id=img, beta=round(rng.uniform(0.3, 1.6), 6), gecko_nulls=gid == "ghost-protocol",
            )
        )  # fmt: skip
    used_ids = {c.gecko_id for c in out}
    used_symbols = [c.symbol for c in out]
    for i in range(max(0, n - len(out))):
        name = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()
        name += rng.choice(_SUFFIXES)
        if i % 250 == 137 and len(used_symbols) > 20:
            symbol = used_symbols[-10]  # deliberate symbol collision between unrelated coins
        else:
            letters = re.sub(r"[^A-Z]", "", name.upper())
            symbol = letters[: rng.randint(3, 5)]
            while symbol in used_symbols:
                symbol += rng.choice("XYZQ0123456789")
        gid = _slug(name)
        while gid in used_ids:
            gid += "-2"
        used_ids.add(gid)
        used_symbols.append(symbol)
        mcap = 4e9 * 0.985**i * rng.uniform(0.7, 1.3)
        price = 10 ** rng.uniform(-5, 3)
        circ = None if rng.random() < 0.04 else mcap / price
        total = (circ or mcap / price) * rng.uniform(1.0, 1.6) if rng.random() > 0.05 else None
        mx = total * rng.uniform(1.0, 2.0) if total and rng.random() < 0.4 else None
        ath = price * rng.uniform(1.0, 30.0) if rng.random() > 0.02 else None
        first = updated_at - timedelta(days=rng.randint(60, 3000))
        out.append(
            WorldCoin(
                gecko_id=gid, paprika_id=f"{_slug(symbol)}-{gid}", symbol=symbol, name=name,
                price=price, circulating_supply=circ, total_supply=total, max_supply=mx,
                volume_24h=mcap * rng.uniform(0.005, 0.3), percent_change_24h=round(rng.gauss(0, 6), 5),
                ath=ath, ath_date=(first + timedelta(days=rng.randint(1, 50))) if ath else None,
                atl=price * rng.uniform(0.01, 1.0), atl_date=first + timedelta(days=rng.randint(1, 50)),
                first_data_at=first.replace(hour=0, minute=0, second=0, microsecond=0),
                updated_at=updated_at, image_id=40000 + i, beta=round(rng.uniform(0.0, 2.0), 6),
            )
        )  # fmt: skip
    out.sort(key=lambda c: c.market_cap, reverse=True)
    return [replace(c, rank=r) for r, c in enumerate(out, start=1)]


def advance(
    coins: list[WorldCoin], minutes: float = 5, seed: int = 0, fraction: float = 1.0
) -> list[WorldCoin]:
    """A later snapshot: ``fraction`` of the coins get new prices and ``updated_at``; the rest are untouched."""
    rng = random.Random(f"advance:{seed}")
    out = []
    for coin in coins:
        if rng.random() >= fraction:
            out.append(coin)
            continue
        move = rng.gauss(0, 0.006)
        price = coin.price * (1 + move)
        out.append(
            replace(
                coin,
                price=price,
                volume_24h=coin.volume_24h * rng.uniform(0.97, 1.03),
                percent_change_24h=round(coin.percent_change_24h + move * 100, 5),
                ath=max(coin.ath, price) if coin.ath is not None else None,
                updated_at=coin.updated_at + timedelta(minutes=minutes),
            )
        )
    return out


def _num(value: float, places: int = 2) -> float | int:
    """Round like CoinPaprika: integral values come out as JSON ints (``0``, ``-4``)."""
    r = round(value, places)
    return int(r) if r == int(r) else r


def _z(moment: datetime, ms: bool = False) -> str:
    text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{moment.microsecond // 1000:03d}Z" if ms else f"{text}Z"


def _row_rng(coin: WorldCoin, tag: str) -> random.Random:
    return random.Random(f"{tag}:{coin.gecko_id}:{coin.updated_at.isoformat()}:{coin.price!r}")


_PAPRIKA_SPREADS = {"15m": 0.1, "30m": 0.2, "1h": 0.4, "6h": 1.0, "12h": 2.0, "24h": 0.0, "7d": 8.0, "30d": 15.0, "1y": 60.0}  # fmt: skip


def coinpaprika_ticker(coin: WorldCoin, *, free_plan: bool = False) -> dict[str, Any]:
    """A CoinPaprika ``/v1/tickers`` element (USD quote); ``free_plan`` drops ``circulating_supply``."""
    rng = _row_rng(coin, "paprika")
    pct = coin.percent_change_24h
    ath = coin.ath
    quote: dict[str, Any] = {
        "price": coin.price,
        "volume_24h": coin.volume_24h,
        "volume_24h_change_24h": _num(rng.gauss(0, 20)),
        "market_cap": round(coin.market_cap),
        "market_cap_change_24h": _num(pct),
        **{f"percent_change_{tf}": _num(rng.gauss(0, sd)) for tf, sd in _PAPRIKA_SPREADS.items()},
        "percent_change_24h": _num(pct),
        "ath_price": ath,
        "ath_date": _z(coin.ath_date) if ath is not None and coin.ath_date else None,
        "percent_from_price_ath": _num((coin.price / ath - 1) * 100) if ath else None,
    }
    row: dict[str, Any] = {
        "id": coin.paprika_id,
        "name": coin.name,
        "symbol": coin.symbol.upper(),
        "rank": coin.rank,
        "circulating_supply": int(coin.circulating_supply or 0),
        "total_supply": int(coin.total_supply or 0),
        "max_supply": int(coin.max_supply or 0),
        "beta_value": coin.beta,
        "first_data_at": _z(coin.first_data_at),
        "last_updated": _z(coin.updated_at - timedelta(seconds=rng.randint(0, 240))),
        "quotes": {"USD": quote},
    }
    if free_plan:
        del row["circulating_supply"]
    return row


def _intish(value: float) -> float | int:
    """CoinGecko sends large round-ish values as JSON ints (``"high_24h": 97317``)."""
    return round(value) if value >= 1000 else value


def coingecko_market(coin: WorldCoin) -> dict[str, Any]:
    """A CoinGecko ``/coins/markets`` row (``vs_currency=usd``), with its real nulls and int/float mix."""
    rng = _row_rng(coin, "gecko")
    price, pct = coin.price, coin.percent_change_24h
    opened = price / (1 + pct / 100)
    mcap = coin.market_cap
    supply_for_fdv = coin.max_supply or coin.total_supply or coin.circulating_supply or 0.0
    partial_nulls = random.Random(coin.gecko_id).random() < 0.02
    ico = random.Random(f"roi:{coin.gecko_id}")
    roi = None
    if coin.gecko_id == "ethereum" or (coin.rank > 10 and ico.random() < 0.13):
        times = ico.uniform(-0.9, 40.0)
        roi = {
            "times": times,
            "currency": ico.choice(["btc", "eth", "usd"]),
            "percentage": times * 100,
        }
    row: dict[str, Any] = {
        "id": coin.gecko_id,
        "symbol": coin.symbol.lower(),
        "name": coin.name,
        "image": f"https://coin-images.coingecko.com/coins/images/{coin.image_id}/large/{coin.gecko_id}.png?{IMAGE_BUSTER}",
        "current_price": price,
        "market_cap": round(mcap),
        "market_cap_rank": coin.rank,
        "fully_diluted_valuation": round(price * supply_for_fdv),
        "total_volume": round(coin.volume_24h),
        "high_24h": _intish(max(price, opened) * (1 + rng.uniform(0, 0.02))),
        "low_24h": _intish(min(price, opened) * (1 - rng.uniform(0, 0.02))),
        "price_change_24h": price - opened,
        "price_change_percentage_24h": round(pct, 5),
        "market_cap_change_24h": mcap - mcap / (1 + pct / 100),
        "market_cap_change_percentage_24h": round(pct * rng.uniform(0.95, 1.05), 5),
        "circulating_supply": float(coin.circulating_supply or 0.0),
        "total_supply": coin.total_supply,
        "max_supply": coin.max_supply,
        "ath": _intish(coin.ath) if coin.ath is not None else max(price, opened),
        "ath_change_percentage": round((price / coin.ath - 1) * 100, 5) if coin.ath else 0.0,
        "ath_date": _z(coin.ath_date or coin.updated_at, ms=True),
        "atl": coin.atl,
        "atl_change_percentage": round((price / coin.atl - 1) * 100, 5),
        "atl_date": _z(coin.atl_date, ms=True),
        "roi": roi,
        "last_updated": _z(
            coin.updated_at - timedelta(milliseconds=rng.randint(0, 30_000)), ms=True
        ),
    }
    if partial_nulls:
        for key in ("high_24h", "low_24h", "price_change_24h", "price_change_percentage_24h"):
            row[key] = None
    if coin.gecko_nulls:
        for key in row:
            if key not in ("id", "symbol", "name", "image", "total_supply"):
                row[key] = None
    return row


def _cell(value: float | None) -> str:
    return "" if value is None else repr(value)


def write_history_csv(
    path: Path | str,
    coins: list[WorldCoin],
    days: int,
    layout: Literal["kaggle", "unified"] = "kaggle",
    seed: int = 0,
) -> int:
    """Write ``days`` daily rows per coin ending on each coin's ``updated_at`` day; returns rows written.

    ``kaggle`` is the Kaggle "Cryptocurrency Historical Prices" layout (one block per coin, ``SNo``
    restarting at 1 per coin as when the per-coin files are concatenated). ``unified`` has one row
    per coin per day with empty cells for unknown values.
    """
    per_coin: list[list[tuple[date, float, float, float, float, float]]] = []
    for coin in coins:
        rng = random.Random(f"csv:{seed}:{coin.gecko_id}")
        closes = [coin.price]
        for _ in range(days):
            closes.append(closes[-1] / (1 + rng.gauss(0, 0.03)))
        closes.reverse()  # closes[0] is the day before the first row
        rows = []
        for k in range(days):
            day = coin.updated_at.date() - timedelta(days=days - 1 - k)
            opened, close = closes[k], closes[k + 1]
            high = max(opened, close) * (1 + rng.uniform(0, 0.03))
            low = min(opened, close) * (1 - rng.uniform(0, 0.03))
            rows.append((day, high, low, opened, close, coin.volume_24h * rng.uniform(0.6, 1.4)))
        per_coin.append(rows)
    written = 0
    with Path(path).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        if layout == "kaggle":
            writer.writerow(KAGGLE_HEADER)
            for coin, rows in zip(coins, per_coin, strict=True):
                for sno, (day, high, low, opened, close, vol) in enumerate(rows, start=1):
                    mcap = close * (coin.circulating_supply or 0.0)
                    writer.writerow(
                        [
                            sno,
                            coin.name,
                            coin.symbol,
                            f"{day} 23:59:59",
                            high,
                            low,
                            opened,
                            close,
                            vol,
                            mcap,
                        ]
                    )
                    written += 1
            return written
        writer.writerow(UNIFIED_HEADER)
        for k in range(days):
            for coin, rows in zip(coins, per_coin, strict=True):
                day, _high, _low, opened, close, vol = rows[k]
                circ = coin.circulating_supply
                stamp = coin.updated_at - timedelta(days=days - 1 - k)
                writer.writerow([
                    coin.symbol, coin.name, repr(close), _cell(close * circ if circ else None), repr(vol),
                    _cell(circ), _cell(coin.total_supply), _cell(coin.max_supply),
                    repr(round((close / opened - 1) * 100, 4)), coin.rank, _z(stamp),
                ])  # fmt: skip
                written += 1
    return written
