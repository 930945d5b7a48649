"""Business hours as pure functions: ranges (several a day, to midnight), closed days, the
channel's time zone, and the nights the clocks change."""

from datetime import date, datetime, time, timezone
from zoneinfo import ZoneInfo

from conversations.hours import BusinessHours, business_hours_back_words, business_hours_next_open, business_hours_open

ROME = ZoneInfo("Europe/Rome")
UTC = timezone.utc

# Monday to Friday 9-13 and 14-18, Saturday 9-12.
SHOP = BusinessHours(
    time_zone="Europe/Rome",
    ranges=tuple((d, time(9), time(13)) for d in range(5)) + tuple((d, time(14), time(18)) for d in range(5)) + ((5, time(9), time(12)),),
)


def rome(*args) -> datetime:
    return datetime(*args, tzinfo=ROME)


def test_no_hours_set_is_always_open():
    assert business_hours_open(None, rome(2026, 12, 6, 3)) is True
    assert business_hours_open(BusinessHours(time_zone="Europe/Rome"), rome(2026, 12, 6, 3)) is True
    assert business_hours_next_open(None, rome(2026, 12, 6, 3)) == rome(2026, 12, 6, 3)


def test_open_inside_each_range_and_closed_between_them():
    monday = (2026, 11, 30)
    assert business_hours_open(SHOP, rome(*monday, 9, 0))  # opens is inside
    assert business_hours_open(SHOP, rome(*monday, 12, 59))
    assert not business_hours_open(SHOP, rome(*monday, 13, 0))  # closes is outside
    assert not business_hours_open(SHOP, rome(*monday, 13, 30))  # lunch
    assert business_hours_open(SHOP, rome(*monday, 14, 0))
    assert not business_hours_open(SHOP, rome(*monday, 8, 59))
    assert not business_hours_open(SHOP, rome(2026, 12, 6, 10))  # Sunday
    assert business_hours_open(SHOP, rome(2026, 12, 5, 11, 59)) and not business_hours_open(SHOP, rome(2026, 12, 5, 12))


def test_the_next_opening_is_after_lunch_tomorrow_or_on_monday():
    assert business_hours_next_open(SHOP, rome(2026, 11, 30, 13, 10)) == rome(2026, 11, 30, 14)
    assert business_hours_next_open(SHOP, rome(2026, 11, 30, 19)) == rome(2026, 12, 1, 9)
    assert business_hours_next_open(SHOP, rome(2026, 12, 5, 12, 30)) == rome(2026, 12, 7, 9)  # Saturday noon → Monday
    open_now = rome(2026, 11, 30, 10, 15)
    assert business_hours_next_open(SHOP, open_now) == open_now


def test_a_closed_day_is_skipped_whatever_the_weekly_hours():
    holidays = BusinessHours(time_zone=SHOP.time_zone, ranges=SHOP.ranges, closed=frozenset({date(2026, 12, 8), date(2026, 12, 7)}))
    assert not business_hours_open(holidays, rome(2026, 12, 8, 10))
    assert business_hours_next_open(holidays, rome(2026, 12, 5, 12, 30)) == rome(2026, 12, 9, 9)


def test_hours_are_the_channels_wall_clock_in_its_own_time_zone():
    new_york = BusinessHours(time_zone="America/New_York", ranges=((0, time(9), time(17)),))
    at = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)  # 10:00 in New York, 16:00 in Rome
    assert business_hours_open(new_york, at)
    assert not business_hours_open(SHOP, at.replace(hour=17))  # 18:00 in Rome
    back = business_hours_next_open(new_york, datetime(2026, 11, 30, 23, 0, tzinfo=UTC))  # Monday 18:00 in New York
    assert back == datetime(2026, 12, 7, 9, tzinfo=ZoneInfo("America/New_York")) and back.utcoffset().total_seconds() == -5 * 3600


def test_a_range_to_midnight_and_the_late_shift():
    late = BusinessHours(time_zone="Europe/Rome", ranges=((4, time(18), time(0)),))  # Friday 18:00-24:00
    assert business_hours_open(late, rome(2026, 12, 4, 23, 59))
    assert not business_hours_open(late, rome(2026, 12, 5, 0, 0))


def test_across_the_spring_forward_night_nine_is_still_nine():
    # 29 March 2026: Rome goes from 02:00 CET to 03:00 CEST.
    sunday = BusinessHours(time_zone="Europe/Rome", ranges=((6, time(2, 30), time(4)), (0, time(9), time(18))))
    before = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # 01:30 CET
    # 02:30 never happens that night: the range starts when the clocks reach it, 03:00 CEST.
    assert business_hours_next_open(sunday, before) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    monday = business_hours_next_open(sunday, datetime(2026, 3, 29, 3, 0, tzinfo=UTC))
    assert monday == rome(2026, 3, 30, 9) and monday.astimezone(UTC).hour == 7  # 9:00 CEST, UTC+2
    assert business_hours_open(SHOP, datetime(2026, 3, 27, 8, 0, tzinfo=UTC))  # Friday 9:00 CET
    assert not business_hours_open(SHOP, datetime(2026, 3, 30, 6, 30, tzinfo=UTC))  # Monday 8:30 CEST
    assert business_hours_open(SHOP, datetime(2026, 3, 30, 7, 0, tzinfo=UTC))  # Monday 9:00 CEST


def test_across_the_fall_back_night_the_repeated_hour_is_open_both_times():
    # 25 October 2026: Rome goes from 03:00 CEST back to 02:00 CET; 02:00-03:00 happens twice.
    night = BusinessHours(time_zone="Europe/Rome", ranges=((6, time(2), time(3)),))
    assert business_hours_open(night, datetime(2026, 10, 25, 0, 30, tzinfo=UTC))  # 02:30 CEST
    assert business_hours_open(night, datetime(2026, 10, 25, 1, 30, tzinfo=UTC))  # 02:30 CET, the second time
    assert not business_hours_open(night, datetime(2026, 10, 25, 2, 0, tzinfo=UTC))  # 03:00 CET
    saturday_evening = datetime(2026, 10, 24, 20, 0, tzinfo=UTC)
    assert business_hours_next_open(night, saturday_evening).astimezone(UTC) == datetime(2026, 10, 25, 0, 0, tzinfo=UTC)  # 02:00 CEST
    assert business_hours_next_open(SHOP, saturday_evening) == rome(2026, 10, 26, 9)
    assert rome(2026, 10, 26, 9).astimezone(UTC).hour == 8  # CET again


def test_a_channel_closed_every_day_has_no_next_opening():
    never = BusinessHours(time_zone="Europe/Rome", ranges=((0, time(9), time(9)),))  # an empty range
    assert business_hours_next_open(never, rome(2026, 12, 1, 10)) is None


def test_when_a_person_is_back_in_the_customers_words():
    assert business_hours_back_words(rome(2025, 12, 1, 9), language="it") == "lunedì 1 dicembre alle 9:00"
    assert business_hours_back_words(rome(2026, 12, 7, 14, 30), language="en") == "Monday 7 December at 14:30"
    assert business_hours_back_words(rome(2026, 12, 7, 9), language="") == "lunedì 7 dicembre alle 9:00"  # unknown: Italian
