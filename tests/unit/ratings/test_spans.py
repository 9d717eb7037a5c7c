"""Cutting ratings into day/week/month spans in UTC. The referee for which period a rating falls in
is Python's own calendar: `calendar.timegm` builds the UTC timestamps, and `datetime.isocalendar`
on the same timestamps says which ISO week they are in. The process runs in a timezone far from
UTC, so a split that used local time would cut at the wrong midnight."""
import calendar
import datetime
import pathlib
import time

import pytest

from ratings import features, spans
from ratings.errors import DataError
from tests.helpers import write_csv

HEADER = ",".join(features.RATINGS_COLUMNS)


@pytest.fixture(autouse=True)
def far_from_utc(monkeypatch):
    """Local time UTC-8/-7: local midnight is 08:00 UTC, so local and UTC days differ."""
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def utc(*fields) -> int:
    """Seconds since the epoch of a UTC date and time (year, month, day, hour, minute, second)."""
    return calendar.timegm((*fields, *[0] * (6 - len(fields))))


def ratings_file(folder: pathlib.Path, timestamps, side_tables: bool = False) -> pathlib.Path:
    """A canonical ratings.csv with one rating per timestamp: user u<i>, movie m<i>."""
    path = write_csv(folder / features.RATINGS_FILE, HEADER,
                     [f"u{i},m{i},4,{t}" for i, t in enumerate(timestamps)])
    if side_tables:
        write_csv(folder / features.MOVIES_FILE, ",".join(features.MOVIES_COLUMNS), ["m0,Heat,1995,Action"])
        write_csv(folder / features.USERS_FILE, ",".join(features.USERS_COLUMNS), ["u0,30,F,writer,02139"])
    return path


def span_rows(dest: pathlib.Path):
    """{span number: [user IDs in file order]} of what split_spans wrote, checking each header."""
    found = {}
    for folder in sorted(dest.glob("span-*")):
        lines = (folder / features.RATINGS_FILE).read_text().splitlines()
        assert lines[0] == HEADER
        found[int(folder.name.split("-")[1])] = [line.split(",")[0] for line in lines[1:]]
    return found


def test_days_are_cut_at_utc_midnight_and_numbered_over_days_with_ratings(tmp_path):
    timestamps = [utc(2021, 3, 1, 23, 59, 59), utc(2021, 3, 2), utc(2021, 3, 2, 7, 59, 59),
                  utc(2021, 3, 5, 12), utc(2021, 3, 1)]
    counts = spans.split_spans(ratings_file(tmp_path / "src", timestamps), tmp_path / "spans", "day")
    # Mar 3 and 4 have no ratings and get no span; the last row (Mar 1) joins span 1, in file order.
    assert counts == {1: 2, 2: 2, 3: 1}
    assert span_rows(tmp_path / "spans") == {1: ["u0", "u4"], 2: ["u1", "u2"], 3: ["u3"]}
    assert sorted(p.name for p in (tmp_path / "spans").iterdir()) == ["span-1", "span-2", "span-3"]


def test_iso_weeks_across_a_year_end_follow_the_python_calendar(tmp_path):
    timestamps = [utc(2019, 12, 29, 23, 59, 59),  # Sunday: ISO 2019-W52
                  utc(2019, 12, 30),              # Monday: ISO 2020-W01, though still 2019
                  utc(2020, 12, 31, 12),          # Thursday: ISO 2020-W53
                  utc(2021, 1, 3, 23, 59, 59),    # Sunday: ISO 2020-W53, though already 2021
                  utc(2021, 1, 4)]                # Monday: ISO 2021-W01
    weeks = [datetime.datetime.fromtimestamp(t, tz=datetime.timezone.utc).isocalendar()[:2]
             for t in timestamps]
    assert weeks == [(2019, 52), (2020, 1), (2020, 53), (2020, 53), (2021, 1)]
    number = {week: n for n, week in enumerate(sorted(set(weeks)), start=1)}
    expected = {}
    for i, week in enumerate(weeks):
        expected.setdefault(number[week], []).append(f"u{i}")
    counts = spans.split_spans(ratings_file(tmp_path / "src", timestamps), tmp_path / "spans", "week")
    assert span_rows(tmp_path / "spans") == expected == {1: ["u0"], 2: ["u1"], 3: ["u2", "u3"], 4: ["u4"]}
    assert counts == {1: 1, 2: 1, 3: 2, 4: 1}


def test_months_are_cut_at_utc_midnight_and_ordered_across_a_year_end(tmp_path):
    timestamps = [utc(2021, 2, 1), utc(2021, 1, 31, 23, 59, 59), utc(2020, 12, 31, 23, 59, 59),
                  utc(2021, 1, 1), utc(2021, 5, 1)]
    counts = spans.split_spans(ratings_file(tmp_path / "src", timestamps), tmp_path / "spans", "month")
    assert span_rows(tmp_path / "spans") == {1: ["u2"], 2: ["u1", "u3"], 3: ["u0"], 4: ["u4"]}
    assert counts == {1: 1, 2: 2, 3: 1, 4: 1}


def test_more_days_than_open_files_keep_every_rating_under_one_header(tmp_path):
    """A daily history longer than MAX_OPEN_FILES is written in passes: a span file closed and
    reopened gets its later ratings appended, not a second header."""
    days = spans.MAX_OPEN_FILES + 20
    timestamps = [utc(2022, 1, 1, 6) + 86400 * (i % days) for i in range(2 * days)]
    counts = spans.split_spans(ratings_file(tmp_path / "src", timestamps), tmp_path / "spans", "day")
    assert counts == {day: 2 for day in range(1, days + 1)}
    assert span_rows(tmp_path / "spans") == {day: [f"u{day - 1}", f"u{day - 1 + days}"]
                                             for day in range(1, days + 1)}


def test_side_tables_are_copied_beside_the_spans(tmp_path):
    src = ratings_file(tmp_path / "src", [utc(2021, 3, 1)], side_tables=True).parent
    spans.split_spans(src, tmp_path / "spans", "day")
    for side_table in (features.MOVIES_FILE, features.USERS_FILE):
        assert (tmp_path / "spans" / side_table).read_bytes() == (src / side_table).read_bytes()


def test_a_bad_row_writes_nothing_and_names_file_and_line(tmp_path):
    """The bad row is the last one: by then every earlier period is known, yet no span is written
    and the spans already in the destination stay as they were."""
    dest = tmp_path / "spans"
    spans.split_spans(ratings_file(tmp_path / "old", [utc(2021, 3, 1)]), dest, "day")
    before = {p.relative_to(dest): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    src = ratings_file(tmp_path / "src", [utc(2021, 3, 2), utc(2021, 3, 3)])
    with src.open("a") as f:
        f.write("u9,m9,4,yesterday\n")
    with pytest.raises(DataError) as error:
        spans.split_spans(src, dest, "day")
    assert str(error.value) == f"{src}:4: field 'timestamp': not a number: 'yesterday'"
    assert {p.relative_to(dest): p.read_bytes() for p in dest.rglob("*") if p.is_file()} == before


def test_resplitting_into_an_existing_destination_replaces_its_spans(tmp_path):
    """A longer history split again into the same folder: every span holds exactly the new split's
    ratings (none appended twice), and no staging folder is left."""
    dest = tmp_path / "spans"
    first = [utc(2021, 3, 1), utc(2021, 3, 2)]
    spans.split_spans(ratings_file(tmp_path / "v1", first), dest, "day")
    counts = spans.split_spans(ratings_file(tmp_path / "v2", first + [utc(2021, 3, 2, 9), utc(2021, 3, 4)]),
                               dest, "day")
    assert counts == {1: 1, 2: 2, 3: 1}
    assert span_rows(dest) == {1: ["u0"], 2: ["u1", "u2"], 3: ["u3"]}
    assert sorted(p.name for p in dest.iterdir()) == ["span-1", "span-2", "span-3"]
