"""Writing the canonical dataset folder: ratings.csv, movies.csv, users.csv.

Files are written to a temporary name and renamed into place only when complete, so a failed
import never leaves a half-written ratings file that a pipeline run could pick up.
"""
import collections
import csv
import dataclasses
import os
import pathlib
from typing import Iterable, Sequence

from movierec.data import features
from movierec.data.features import MOVIES_FILE, RATINGS_FILE, USERS_FILE
from movierec.data.records import Rating
from movierec.data.side_tables import Movie, User


@dataclasses.dataclass(frozen=True)
class ImportSummary:
    dest: pathlib.Path
    ratings: int
    users: int
    movies: int
    movie_rows: int
    user_rows: int

    def describe(self) -> str:
        return (f"wrote {self.ratings:,} ratings ({self.users:,} users, {self.movies:,} movies), "
                f"{self.movie_rows:,} movie rows and {self.user_rows:,} user rows to {self.dest}")


def _write_csv(path: pathlib.Path, header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def write_dataset(dest: pathlib.Path, ratings: Iterable[Rating],
                  movies: Iterable[Movie] = (), users: Iterable[User] = ()) -> ImportSummary:
    """Streams ratings (and side tables) into `dest`.

    Everything is written to temporary files first and renamed into place only when every input
    was read without error, so a bad row leaves `dest` exactly as it was.
    """
    dest.mkdir(parents=True, exist_ok=True)
    user_ids, movie_ids, counts = set(), set(), collections.Counter()

    def ratings_rows():
        for rating in ratings:
            user_ids.add(rating.user_id)
            movie_ids.add(rating.movie_id)
            counts["ratings"] += 1
            yield rating.as_row()

    movies, users = list(movies), list(users)
    tables = [(RATINGS_FILE, features.RATINGS_COLUMNS, ratings_rows())]
    tables += [(MOVIES_FILE, features.MOVIES_COLUMNS, (m.as_row() for m in movies))] if movies else []
    tables += [(USERS_FILE, features.USERS_COLUMNS, (u.as_row() for u in users))] if users else []
    temps = {name: dest / f".{name}.tmp" for name, _, _ in tables}
    try:
        for name, header, rows in tables:
            _write_csv(temps[name], header, rows)
        if not user_ids:
            raise ValueError("no ratings found in the input")
        for name, tmp in temps.items():
            os.replace(tmp, dest / name)
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
    return ImportSummary(dest, counts["ratings"], len(user_ids), len(movie_ids), len(movies), len(users))
