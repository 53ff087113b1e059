"""Maintenance windows against dates worked out by hand.

2026's clocks in Europe/Berlin go forward on Sunday 29 March at 01:00 UTC (02:00 CET →
03:00 CEST) and back on Sunday 25 October at 01:00 UTC (03:00 CEST → 02:00 CET)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from updates.windows import Window, is_open, next_open, next_opening, window_errors


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def window(days: set[int], start: str, minutes: int, zone: str) -> Window:
    return Window(
        days=frozenset(days),
        start=time.fromisoformat(start),
        duration=timedelta(minutes=minutes),
        timezone=zone,
    )


SATURDAY_BERLIN = window({6}, "02:00", 120, "Europe/Berlin")


def test_a_saturday_window_in_berlin_before_the_march_switch_is_01_to_03_utc() -> None:
    # Saturday 28 March 2026 is still CET (UTC+1): 02:00-04:00 local is 01:00-03:00 UTC
    assert not is_open([SATURDAY_BERLIN], utc("2026-03-28T00:59:59"))
    assert is_open([SATURDAY_BERLIN], utc("2026-03-28T01:00:00"))
    assert is_open([SATURDAY_BERLIN], utc("2026-03-28T02:59:59"))
    assert not is_open([SATURDAY_BERLIN], utc("2026-03-28T03:00:00"))


def test_the_same_window_after_the_switch_is_00_to_02_utc() -> None:
    # Saturday 4 April 2026 is CEST (UTC+2): 02:00-04:00 local is 00:00-02:00 UTC
    assert is_open([SATURDAY_BERLIN], utc("2026-04-04T00:00:00"))
    assert is_open([SATURDAY_BERLIN], utc("2026-04-04T01:59:00"))
    assert not is_open([SATURDAY_BERLIN], utc("2026-04-04T02:30:00"))  # open under CET
    assert not is_open([SATURDAY_BERLIN], utc("2026-04-03T23:59:00"))


def test_the_next_opening_across_the_switch_is_one_hour_earlier_in_utc() -> None:
    # just closed on 28 March; a naive "+7 days" would say 4 April 01:00 UTC
    opening = next_opening([SATURDAY_BERLIN], utc("2026-03-28T03:00:00"))
    assert opening is not None
    assert opening.at == utc("2026-04-04T00:00:00")
    assert opening.describe() == "Sat 02:00 Europe/Berlin"
    # inside the window, it is open now
    assert next_open([SATURDAY_BERLIN], utc("2026-03-28T01:30:00")) == utc("2026-03-28T01:30:00")


def test_a_window_crossing_midnight_is_open_into_the_next_day() -> None:
    # Friday 22:00 UTC for 4 hours: open until Saturday 02:00 UTC, though Saturday is not
    # one of its days
    friday_night = window({5}, "22:00", 240, "UTC")
    assert not is_open([friday_night], utc("2026-03-27T21:59:00"))
    assert is_open([friday_night], utc("2026-03-27T22:00:00"))
    assert is_open([friday_night], utc("2026-03-28T01:59:00"))
    assert not is_open([friday_night], utc("2026-03-28T02:00:00"))
    assert next_open([friday_night], utc("2026-03-28T02:00:00")) == utc("2026-04-03T22:00:00")


def test_a_window_over_the_spring_switch_lasts_its_real_duration() -> None:
    # Sunday 29 March 01:00 CET (00:00 UTC) for 3 hours closes at 03:00 UTC = 05:00 CEST
    night = window({7}, "01:00", 180, "Europe/Berlin")
    assert is_open([night], utc("2026-03-29T00:00:00"))
    assert is_open([night], utc("2026-03-29T02:30:00"))
    assert not is_open([night], utc("2026-03-29T03:00:00"))


def test_a_start_in_the_spring_gap_starts_as_much_later() -> None:
    # 02:30 does not exist on 29 March in Berlin: the window opens at 03:30 CEST (01:30 UTC)
    gap = window({7}, "02:30", 60, "Europe/Berlin")
    assert not is_open([gap], utc("2026-03-29T01:29:00"))
    assert is_open([gap], utc("2026-03-29T01:30:00"))
    assert not is_open([gap], utc("2026-03-29T02:30:00"))
    opening = next_opening([gap], utc("2026-03-29T00:00:00"))
    assert opening is not None and opening.at == utc("2026-03-29T01:30:00")


def test_a_start_repeated_in_the_autumn_opens_at_its_first_occurrence() -> None:
    # 02:30 happens twice on 25 October: first at 02:30 CEST = 00:30 UTC
    repeated = window({7}, "02:30", 30, "Europe/Berlin")
    assert is_open([repeated], utc("2026-10-25T00:30:00"))
    assert not is_open([repeated], utc("2026-10-25T01:00:00"))
    assert not is_open([repeated], utc("2026-10-25T01:30:00"))  # 02:30 CET, the second


def test_several_windows_any_is_enough_and_none_means_any_time() -> None:
    monday = window({1}, "09:00", 60, "UTC")
    assert is_open([], utc("2026-03-28T12:00:00"))
    assert next_open([], utc("2026-03-28T12:00:00")) == utc("2026-03-28T12:00:00")
    assert is_open([SATURDAY_BERLIN, monday], utc("2026-03-30T09:30:00"))
    # on Saturday 28 March at noon: Monday 09:00 UTC comes before next Saturday
    opening = next_opening([SATURDAY_BERLIN, monday], utc("2026-03-28T12:00:00"))
    assert opening is not None and opening.at == utc("2026-03-30T09:00:00")
    assert opening.describe() == "Mon 09:00 UTC"


def test_window_errors_name_the_field() -> None:
    good = {"days": [6], "start": time(2), "duration_minutes": 120, "timezone": "Europe/Berlin"}
    assert window_errors(**good) == {}
    assert set(window_errors(**{**good, "timezone": "Mars/Olympus"})) == {"timezone"}
    assert set(window_errors(**{**good, "days": []})) == {"days"}
    assert set(window_errors(**{**good, "days": [0, 8]})) == {"days"}
    assert set(window_errors(**{**good, "days": [1, 1]})) == {"days"}
    assert set(window_errors(**{**good, "duration_minutes": 0})) == {"duration_minutes"}
    assert set(window_errors(**{**good, "duration_minutes": 7 * 24 * 60 + 1})) == {
        "duration_minutes"
    }
