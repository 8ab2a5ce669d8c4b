"""Pure schedule arithmetic: parse a schedule and compute the next run from a given time."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

_INTERVAL = re.compile(
    r"^\s*(?:every\s+)?(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr|d)?\s*$", re.IGNORECASE
)
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400}


@dataclass(frozen=True)
class Schedule:
    """Either a fixed interval (anchored on the last run) or a cron expression."""

    interval: timedelta | None = None
    cron: str | None = None

    def next_after(self, now: datetime, last_run: datetime | None) -> datetime:
        """When the next run is due, given the current time and the last run's start.

        Never returns more than one due time in the past: after downtime the answer is ``now``
        (one catch-up run), not a burst of the runs that were missed.
        """
        if self.interval is not None:
            if last_run is None:
                return now
            return max(last_run + self.interval, now)
        from croniter import croniter

        base = last_run if last_run is not None else now
        due: datetime = croniter(self.cron, base).get_next(datetime)
        return now if due <= now else due

    @property
    def period(self) -> timedelta:
        """The nominal gap between runs, used for staleness."""
        if self.interval is not None:
            return self.interval
        from croniter import croniter

        it = croniter(self.cron, datetime(2024, 1, 1))  # noqa: DTZ001 - only the gap matters
        first: datetime = it.get_next(datetime)
        second: datetime = it.get_next(datetime)
        return second - first


def parse_schedule(text: str) -> Schedule:
    """Parse ``6h`` / ``30m`` / ``90`` (seconds) / ``every 6h`` or a 5-field cron expression."""
    match = _INTERVAL.match(text)
    if match:
        seconds = float(match.group(1)) * _UNIT_SECONDS[(match.group(2) or "s").lower()]
        if seconds <= 0:
            raise ValueError(f"schedule {text!r} must be a positive interval")
        return Schedule(interval=timedelta(seconds=seconds))
    if len(text.split()) == 5:
        from croniter import croniter

        if croniter.is_valid(text):
            return Schedule(cron=text)
    raise ValueError(f"{text!r} is neither an interval like '6h' nor a 5-field cron expression")
