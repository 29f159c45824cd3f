"""Standard 5-field cron schedules, as the CronJob controller reads them.

Fields: minute hour day-of-month month day-of-week, each a list of ``*``, ``N``,
``N-M``, with an optional ``/step``; month and weekday names (``jan``, ``mon``);
weekday 7 is Sunday; macros ``@yearly @annually @monthly @weekly @daily @midnight
@hourly``. Like cron (and the Kubernetes controller), when both day fields are
restricted a day matches if either matches. Pure functions only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec".split()
_DAYS = "sun mon tue wed thu fri sat".split()
_SEARCH_LIMIT = timedelta(days=366 * 5)


class ScheduleError(ValueError):
    """An unparseable schedule (the API rejects it; the controller skips it)."""


@dataclass(frozen=True)
class Schedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_star: bool
    weekdays_star: bool

    def day_matches(self, dt: datetime) -> bool:
        dom = dt.day in self.days
        dow = (dt.isoweekday() % 7) in self.weekdays
        if self.days_star or self.weekdays_star:
            return dom and dow
        return dom or dow

    def matches(self, dt: datetime) -> bool:
        return (
            dt.minute in self.minutes
            and dt.hour in self.hours
            and dt.month in self.months
            and self.day_matches(dt)
        )

    def next_after(self, dt: datetime) -> datetime | None:
        """The first matching minute strictly after ``dt`` (naive wall-clock time)."""
        t = dt.replace(second=0, microsecond=0) + timedelta(minutes=1)
        end = dt + _SEARCH_LIMIT
        while t <= end:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
            elif not self.day_matches(t):
                t = t.replace(hour=0, minute=0) + timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0) + timedelta(hours=1)
            elif t.minute not in self.minutes:
                t += timedelta(minutes=1)
            else:
                return t
        return None

    def latest_at_or_before(self, dt: datetime) -> datetime | None:
        """The last matching minute at or before ``dt`` (naive wall-clock time)."""
        t = dt.replace(second=0, microsecond=0)
        end = dt - _SEARCH_LIMIT
        while t >= end:
            if t.month not in self.months:
                t = t.replace(day=1, hour=23, minute=59) - timedelta(days=1)
            elif not self.day_matches(t):
                t = t.replace(hour=23, minute=59) - timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=59) - timedelta(hours=1)
            elif t.minute not in self.minutes:
                t -= timedelta(minutes=1)
            else:
                return t
        return None


def _value(token: str, names: list[str] | None, offset: int) -> int:
    token = token.lower()
    if names and token in names:
        return names.index(token) + offset
    if not token.isdigit():
        raise ScheduleError(f"failed to parse int from {token}")
    return int(token)


def _field(
    expr: str, lo: int, hi: int, names: list[str] | None = None, offset: int = 0
) -> set[int]:
    values: set[int] = set()
    for part in expr.split(","):
        if not part:
            raise ScheduleError(f"empty list element in {expr!r}")
        rng, _, step_s = part.partition("/")
        step = 1
        if step_s:
            if not step_s.isdigit() or int(step_s) == 0:
                raise ScheduleError(f"step of range should be a positive number: {part}")
            step = int(step_s)
        if rng in ("*", "?"):
            start, end = lo, hi
        elif "-" in rng:
            a, b = rng.split("-", 1)
            start, end = _value(a, names, offset), _value(b, names, offset)
        else:
            start = _value(rng, names, offset)
            end = hi if step_s else start
        if start < lo or end > hi or start > end:
            raise ScheduleError(f"value out of range ({lo}-{hi}): {part}")
        values.update(range(start, end + 1, step))
    return values


def parse_schedule(text: str) -> Schedule:
    """Parse a schedule; raises ScheduleError with the reason."""
    text = text.strip()
    if text.startswith(("TZ=", "CRON_TZ=")):
        raise ScheduleError("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")
    if text.startswith("@"):
        if text.lower() not in MACROS:
            raise ScheduleError(f"unrecognized descriptor: {text}")
        text = MACROS[text.lower()]
    fields = text.split()
    if len(fields) != 5:
        raise ScheduleError(f"expected exactly 5 fields, found {len(fields)}: {text}")
    minute, hour, dom, month, dow = fields
    weekdays = _field(dow, 0, 7, _DAYS, 0)
    if 7 in weekdays:
        weekdays = (weekdays - {7}) | {0}
    return Schedule(
        minutes=frozenset(_field(minute, 0, 59)),
        hours=frozenset(_field(hour, 0, 23)),
        days=frozenset(_field(dom, 1, 31)),
        months=frozenset(_field(month, 1, 12, _MONTHS, 1)),
        weekdays=frozenset(weekdays),
        days_star=dom.startswith(("*", "?")),
        weekdays_star=dow.startswith(("*", "?")),
    )


def zone(name: str | None) -> ZoneInfo:
    """The schedule's time zone (UTC when unset); ScheduleError for an unknown name."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ScheduleError(f"unknown time zone {name}") from e


def most_recent_time(
    schedule: Schedule, earliest: datetime, now: datetime, tz: ZoneInfo
) -> datetime | None:
    """The latest scheduled time in (earliest, now], as an aware UTC datetime, or None."""
    local_now = now.astimezone(tz).replace(tzinfo=None)
    t = schedule.latest_at_or_before(local_now)
    if t is None:
        return None
    aware = t.replace(tzinfo=tz).astimezone(UTC)
    return aware if aware > earliest else None


def next_time(schedule: Schedule, after: datetime, tz: ZoneInfo) -> datetime | None:
    """The first scheduled time strictly after ``after``, as an aware UTC datetime."""
    t = schedule.next_after(after.astimezone(tz).replace(tzinfo=None))
    return t.replace(tzinfo=tz).astimezone(UTC) if t else None
