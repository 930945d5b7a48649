"""A channel's business hours, as pure functions over plain data (`BusinessHours`, read by
`services.desk.business_hours_of`): whether a person is in now, when one is back, and that
moment in words for the customer.

Times are the channel's wall-clock times in its time zone: "9:00-18:00" stays 9:00-18:00 on
both sides of a daylight-saving change. A day's range that starts in the hour the clocks
skip begins when the clocks reach it (02:30 on the spring-forward night is 03:30).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# Far enough to pass a year of closed days; a channel closed for longer has no "back".
NEXT_OPEN_HORIZON_DAYS = 400


@dataclass(frozen=True)
class BusinessHours:
    time_zone: str
    ranges: tuple[tuple[int, time, time], ...] = ()  # (weekday 0=Monday, opens, closes; closes 00:00 = midnight)
    closed: frozenset[date] = frozenset()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


def _ranges_of(hours: BusinessHours, day: date) -> list[tuple[datetime, datetime]]:
    """The day's open ranges, by start, in UTC: datetimes of one zone compare by their wall
    clocks, which the night the clocks go back shows twice."""
    if day in hours.closed:
        return []
    zone = hours.zone
    found = []
    for weekday, opens, closes in hours.ranges:
        if weekday != day.weekday():
            continue
        start = datetime.combine(day, opens, tzinfo=zone)
        end_day = day + timedelta(days=1) if closes == time(0) else day
        end = datetime.combine(end_day, closes, tzinfo=zone)
        # In UTC a wall time the clocks skipped is the moment they reach it, and a range over
        # the repeated hour lasts as long as it really does.
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        if end > start:
            found.append((start, end))
    return sorted(found)


def business_hours_open(hours: BusinessHours | None, at: datetime) -> bool:
    """Whether a person is in at `at` (aware). No hours set: always."""
    if hours is None or not hours.ranges:
        return True
    local = at.astimezone(hours.zone)
    return any(start <= at < end for start, end in _ranges_of(hours, local.date()))


def business_hours_next_open(hours: BusinessHours | None, at: datetime) -> datetime | None:
    """When a person is next in, from `at` (aware; `at` itself when open now), in the
    channel's time zone; None when never within NEXT_OPEN_HORIZON_DAYS."""
    if business_hours_open(hours, at):
        return at.astimezone(hours.zone) if hours is not None else at
    today = at.astimezone(hours.zone).date()
    for offset in range(NEXT_OPEN_HORIZON_DAYS):
        for start, _end in _ranges_of(hours, today + timedelta(days=offset)):
            if start > at:
                return start.astimezone(hours.zone)
    return None


# The moment a person is back, in the customer's language (Italian when unknown, as the
# offline agent speaks): the fixed "away" message's `{back}`.
BACK_FORMATS = {
    "it": "{weekday} {day} {month} alle {hour}:{minute:02d}",
    "en": "{weekday} {day} {month} at {hour}:{minute:02d}",
}
WEEKDAY_NAMES = {
    "it": ("lunedì", "martedì", "mercoledì", "giovedì", "venerdì", "sabato", "domenica"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
MONTH_NAMES = {
    "it": ("gennaio", "febbraio", "marzo", "aprile", "maggio", "giugno", "luglio", "agosto", "settembre", "ottobre", "novembre", "dicembre"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"),
}


def business_hours_back_words(at: datetime, *, language: str) -> str:
    """`at` (already in the channel's zone) for the customer: "lunedì 1 dicembre alle 9:00"."""
    lang = language if language in BACK_FORMATS else "it"
    return BACK_FORMATS[lang].format(
        weekday=WEEKDAY_NAMES[lang][at.weekday()], day=at.day, month=MONTH_NAMES[lang][at.month - 1], hour=at.hour,
        minute=at.minute,
    )
