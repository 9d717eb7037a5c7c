"""The movie and user side tables (canonical movies.csv, users.csv): rows and their parsing.

Read by the importers, and by ExampleGen to join movie and user features onto each rating.
"""
import csv
import dataclasses
import io
from typing import Dict, Iterable, Iterator, Optional, Sequence, Tuple

from ratings import paths
from ratings import features, records
from ratings.records import RowError


@dataclasses.dataclass(frozen=True)
class Movie:
    movie_id: str
    title: str
    year: Optional[int]
    genres: Tuple[str, ...]

    def as_row(self):
        return (self.movie_id, self.title, "" if self.year is None else str(self.year),
                features.GENRE_SEPARATOR.join(self.genres))


@dataclasses.dataclass(frozen=True)
class User:
    user_id: str
    age: Optional[int]
    gender: str
    occupation: str
    zip: str

    def as_row(self):
        return (self.user_id, "" if self.age is None else str(self.age), self.gender,
                self.occupation, self.zip)


def optional_int(value: str, source: str, line: int, field: str) -> Optional[int]:
    value = value.strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise RowError(source, line, field, f"not an integer: {value!r}") from None


def csv_rows(stream: Iterable[str], source: str,
             header: Sequence[str]) -> Iterator[Tuple[int, Dict[str, str]]]:
    """Yields (line number, row dict) of a quoted CSV text stream whose header must equal `header`."""
    reader = csv.reader(stream)
    try:
        found = next(reader, None)
    except (UnicodeDecodeError, csv.Error) as e:
        raise RowError(source, 1, None, f"unreadable header ({e})")
    if found != list(header):
        raise RowError(source, 1, None, f"header is {found}, expected {list(header)}")
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except (UnicodeDecodeError, csv.Error) as e:
            raise RowError(source, reader.line_num + 1, None, f"unreadable row ({e})")
        if not row:
            continue
        if len(row) != len(header):
            raise RowError(source, reader.line_num, None,
                           f"expected {len(header)} fields, got {len(row)}")
        yield reader.line_num, dict(zip(header, row))


def parse_movies(stream: Iterable[str], source: str) -> Iterator[Movie]:
    for line_no, row in csv_rows(stream, source, features.MOVIES_COLUMNS):
        movie_id = records.parse_id(row[features.MOVIE_ID], source, line_no, features.MOVIE_ID)
        year = optional_int(row[features.YEAR], source, line_no, features.YEAR)
        genres = tuple(g for g in row[features.GENRES].split(features.GENRE_SEPARATOR) if g)
        yield Movie(movie_id, row[features.TITLE], year, genres)


def parse_users(stream: Iterable[str], source: str) -> Iterator[User]:
    for line_no, row in csv_rows(stream, source, features.USERS_COLUMNS):
        user_id = records.parse_id(row[features.USER_ID], source, line_no, features.USER_ID)
        age = optional_int(row[features.AGE], source, line_no, features.AGE)
        yield User(user_id, age, row[features.GENDER], row[features.OCCUPATION], row[features.ZIP])


def _text(path: str) -> io.TextIOWrapper:
    """The file, local or in a bucket (gs://, s3://), as text decoded line by line, so bytes
    that are not UTF-8 are reported at their row by csv_rows."""
    return io.TextIOWrapper(io.BytesIO(paths.read_bytes(path)), encoding="utf-8-sig", newline="")


def read_movies(path: str) -> list:
    return list(parse_movies(_text(path), path))


def read_users(path: str) -> list:
    return list(parse_users(_text(path), path))
