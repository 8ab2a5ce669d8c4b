"""The pure next-run function, against tables of times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kasparro.pipeline.schedule import parse_schedule

NOW = datetime(2024, 5, 1, 10, 30, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("text", "last_run", "expected"),
    [
        ("6h", None, NOW),  # never ran: run now
        ("6h", NOW - 1 * H, NOW + 5 * H),  # ran an hour ago: wait the rest of the interval
        ("6h", NOW - 6 * H, NOW),  # exactly due
        ("6h", NOW - 72 * H, NOW),  # three days of downtime: one catch-up now, not twelve
        ("30m", NOW - timedelta(minutes=10), NOW + timedelta(minutes=20)),
        ("90", NOW, NOW + timedelta(seconds=90)),
        ("every 2h", NOW - 3 * H, NOW),
        ("1.5h", NOW, NOW + timedelta(minutes=90)),
        ("1d", NOW - 2 * H, NOW + 22 * H),
        ("0 */6 * * *", None, datetime(2024, 5, 1, 12, 0, tzinfo=UTC)),  # next slot
        (
            "0 */6 * * *",
            datetime(2024, 5, 1, 6, 0, 1, tzinfo=UTC),
            datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        ),
        ("0 */6 * * *", datetime(2024, 4, 28, 6, 0, tzinfo=UTC), NOW),  # downtime: one catch-up
        (
            "0 */6 * * *",
            datetime(2024, 5, 1, 6, 0, tzinfo=UTC),
            datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        ),
        (
            "30 2 * * *",
            datetime(2024, 5, 1, 2, 30, tzinfo=UTC),
            datetime(2024, 5, 2, 2, 30, tzinfo=UTC),
        ),
    ],
)
def test_next_after(text: str, last_run: datetime | None, expected: datetime) -> None:
    assert parse_schedule(text).next_after(NOW, last_run) == expected


@pytest.mark.parametrize("text", ["6h", "0 */6 * * *"])
def test_after_a_catch_up_the_next_run_is_a_full_period_away(text: str) -> None:
    schedule = parse_schedule(text)
    catch_up = schedule.next_after(NOW, NOW - 100 * H)
    assert catch_up == NOW
    following = schedule.next_after(NOW + timedelta(seconds=1), catch_up)
    assert following > NOW + timedelta(seconds=1)


@pytest.mark.parametrize(
    ("text", "period"),
    [("6h", 6 * H), ("45m", timedelta(minutes=45)), ("0 */6 * * *", 6 * H), ("0 3 * * *", 24 * H)],
)
def test_period(text: str, period: timedelta) -> None:
    assert parse_schedule(text).period == period


@pytest.mark.parametrize("text", ["", "0", "0h", "soon", "* * *", "61 * * * *", "6 hours ago"])
def test_invalid_schedules_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match=r"interval|cron"):
        parse_schedule(text)


@given(
    gap=st.integers(min_value=-(10**6), max_value=10**7),
    seconds=st.integers(min_value=1, max_value=10**6),
)
def test_interval_never_schedules_in_the_past_nor_later_than_one_period(
    gap: int, seconds: int
) -> None:
    schedule = parse_schedule(f"{seconds}s")
    last = NOW - timedelta(seconds=gap)
    due = schedule.next_after(NOW, last)
    assert due >= NOW
    assert due <= max(NOW, last + timedelta(seconds=seconds))
