"""Cutting a ratings file into spans by time: `<dest>/span-<N>/ratings.csv`, N = 1, 2, ...

Span N holds the ratings of the N-th day, week or month (UTC) that has any, so a history can be
replayed run by run: each pipeline run ingests the newest span and trains on a rolling window.
The side tables (movies.csv, users.csv) are copied to `<dest>/`, where the pipeline looks.
"""
import collections
import csv
import datetime
import pathlib
import shutil
import tempfile
from typing import Callable, Dict, Iterator

from ratings import canonical, features, records
from ratings.errors import DataError

SPAN_FOLDER = "span-{}"
PERIODS: Dict[str, Callable[[datetime.datetime], str]] = {
    "day": lambda t: t.strftime("%Y-%m-%d"),
    "week": lambda t: "{0}-W{1:02d}".format(*t.isocalendar()[:2]),
    "month": lambda t: t.strftime("%Y-%m"),
}
# Open span files at most; a long daily history is written in passes over the open ones.
MAX_OPEN_FILES = 128


def _period(rating: records.Rating, by: str) -> str:
    return PERIODS[by](datetime.datetime.fromtimestamp(rating.timestamp, tz=datetime.timezone.utc))


def _ratings(path: pathlib.Path) -> Iterator[records.Rating]:
    with open(path, "rb") as f:
        yield from records.read_ratings(f, str(path))


def split_spans(src: pathlib.Path, dest: pathlib.Path, by: str) -> Dict[int, int]:
    """Writes the spans; returns {span number: ratings}. Nothing is written if a row is bad."""
    ratings_path = src / features.RATINGS_FILE if src.is_dir() else src
    if not ratings_path.is_file():
        raise DataError(f"{ratings_path}: no such ratings file")
    try:
        periods = sorted({_period(r, by) for r in _ratings(ratings_path)})
    except records.RowError as e:
        raise DataError(str(e)) from e
    span_of = {period: number for number, period in enumerate(periods, start=1)}
    counts = collections.Counter()
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".spans-") as staging:
        staging = pathlib.Path(staging)
        open_files: Dict[int, object] = {}
        try:
            for rating in _ratings(ratings_path):
                span = span_of[_period(rating, by)]
                if span not in open_files:
                    if len(open_files) >= MAX_OPEN_FILES:
                        for f in open_files.values():
                            f.close()
                        open_files.clear()
                    path = staging / SPAN_FOLDER.format(span) / features.RATINGS_FILE
                    path.parent.mkdir(exist_ok=True)
                    new = not path.exists()
                    open_files[span] = open(path, "a", newline="")
                    if new:
                        csv.writer(open_files[span], lineterminator="\n").writerow(features.RATINGS_COLUMNS)
                csv.writer(open_files[span], lineterminator="\n").writerow(rating.as_row())
                counts[span] += 1
        finally:
            for f in open_files.values():
                f.close()
        for span in sorted(counts):
            target = dest / SPAN_FOLDER.format(span)
            if target.exists():
                shutil.rmtree(target)
            (staging / SPAN_FOLDER.format(span)).rename(target)
    copied = [name for name in (features.MOVIES_FILE, features.USERS_FILE) if (ratings_path.parent / name).is_file()]
    for side_table in copied:
        shutil.copy(ratings_path.parent / side_table, dest / side_table)
    canonical.remove_stale_side_tables(dest, copied)
    return dict(sorted(counts.items()))
