"""Writing the canonical dataset folder: ratings.csv, movies.csv, users.csv.

Files are written to a temporary name and renamed into place only when complete, so a failed
import never leaves a half-written ratings file that a pipeline run could pick up. An import
writes a complete folder: a side table it does not provide is removed (the pipeline would join
one left by an earlier import), and a folder holding other files a run would read as ratings
(more `ratings*.csv`, `span-*/`, `train/` + `eval/`) is refused.
"""
import collections
import csv
import dataclasses
import os
import pathlib
from typing import Iterable, List, Sequence, Tuple

from ratings import features
from ratings.features import MOVIES_FILE, RATINGS_FILE, USERS_FILE
from ratings.records import Rating
from ratings.side_tables import Movie, User


@dataclasses.dataclass(frozen=True)
class ImportSummary:
    dest: pathlib.Path
    ratings: int
    users: int
    movies: int
    movie_rows: int
    user_rows: int
    removed: Tuple[str, ...] = ()

    def describe(self) -> str:
        removed = (f"; removed {', '.join(self.removed)} left there by an earlier import"
                   if self.removed else "")
        return (f"wrote {self.ratings:,} ratings ({self.users:,} users, {self.movies:,} movies), "
                f"{self.movie_rows:,} movie rows and {self.user_rows:,} user rows to {self.dest}{removed}")


def other_ratings(dest: pathlib.Path) -> List[str]:
    """What in `dest`, besides ratings.csv, `movierec run --data dest` would read as ratings."""
    found = [p for p in dest.glob("ratings*.csv") if p.name != RATINGS_FILE]
    found += [p for p in dest.glob("span-*") if p.is_dir()]
    found += [dest / split for split in ("train", "eval") if (dest / split).is_dir()]
    return sorted(p.name for p in found)


def remove_stale_side_tables(dest: pathlib.Path, written: Iterable[str]) -> Tuple[str, ...]:
    """Removes the side tables in `dest` that were not just written; returns their names."""
    stale = tuple(name for name in (MOVIES_FILE, USERS_FILE) if name not in written and (dest / name).is_file())
    for name in stale:
        (dest / name).unlink()
    return stale


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
    if dest.is_dir() and (others := other_ratings(dest)):
        raise ValueError(f"{dest}: holds {', '.join(others)}, which `movierec run --data {dest}` would read "
                         "besides the imported ratings; import into an empty folder")
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
    removed = remove_stale_side_tables(dest, temps)
    return ImportSummary(dest, counts["ratings"], len(user_ids), len(movie_ids), len(movies), len(users), removed)
