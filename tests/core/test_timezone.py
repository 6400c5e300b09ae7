"""The Vietnamese day of an instant: ``local_day``'s fixed offset against the zone's own history."""

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from app.core.timezone import local, local_day

_OFFSETS = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@given(
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 12, 31), timezones=st.just(UTC)),
    _OFFSETS,
)
def test_the_local_day_is_the_zones_in_every_era_and_from_any_offset(
    instant: datetime, offset: timezone
) -> None:
    assert local_day(instant) == local(instant).date()
    assert local_day(instant.astimezone(offset)) == local(instant).date()


def test_the_local_day_around_the_last_change_of_offset_and_midnight() -> None:
    # 13 June 1975, 00:00 at +08:00: Vietnam's clocks went to +07:00 (16:00 UTC).
    change = datetime(1975, 6, 12, 16, tzinfo=UTC)
    for minutes in range(-180, 180, 7):
        instant = change + timedelta(minutes=minutes)
        assert local_day(instant) == local(instant).date(), instant
    # The day before, still at +08:00: 16:30 UTC was already the next local day.
    assert local_day(datetime(1975, 6, 11, 16, 30, tzinfo=UTC)).isoformat() == "1975-06-12"
    # 17:00 UTC is local midnight from then on: the day turns there and nowhere else.
    midnight = datetime(2024, 2, 29, 17, tzinfo=UTC)
    assert local_day(midnight - timedelta(microseconds=1)).isoformat() == "2024-02-29"
    assert local_day(midnight).isoformat() == "2024-03-01"
    assert local_day(datetime(1960, 7, 1, 15, 59, tzinfo=UTC)).isoformat() == "1960-07-01"  # +08:00 then
    assert local_day(datetime(1960, 7, 1, 16, tzinfo=UTC)).isoformat() == "1960-07-02"


def test_the_zone_has_kept_its_offset_since_1975() -> None:
    """``local_day``'s shortcut holds while the time zone data has Vietnam at UTC+7, with no daylight
    saving, from 1975 on: a change in the data fails here rather than shifting days silently."""
    for year in range(1976, 2101):
        for month in (1, 4, 7, 10):
            instant = datetime(year, month, 1, tzinfo=UTC)
            assert local(instant).utcoffset() == timedelta(hours=7), instant
