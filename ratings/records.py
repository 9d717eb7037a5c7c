"""Parsing ratings CSVs as real tools write them, with errors that name the file, line and field.

Shared by the importers, `data split-spans` and the ExampleGen executor. What is accepted is what
Python's csv.reader reads (RFC 4180): CRLF or LF line ends (mixed too), a UTF-8 byte-order mark,
fields quoted with `"` (commas and doubled quotes inside), surrounding spaces, blank lines. The
columns are found by their header names, in any order; other columns are ignored with a warning
(pandas' `to_csv` writes its index as an unnamed first column). IDs are kept as written, only
stripped of surrounding spaces (`007` and `7` are two users).

Not accepted: a line break inside a quoted field. RFC 4180 allows it, but no ID, rating or
timestamp contains one, and supporting it would stop files being cut into chunks at any line
end; such a row fails naming its line.
"""
import codecs
import csv
import dataclasses
import logging
import math
from typing import Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

from ratings import features

# Header names of the canonical columns: ours, and GroupLens' MovieLens latest/20M/25M ratings.csv.
CANONICAL_NAMES = {name: name for name in features.RATINGS_COLUMNS}
MOVIELENS_NAMES = {"userId": features.USER_ID, "movieId": features.MOVIE_ID,
                   "rating": features.RATING, "timestamp": features.TIMESTAMP}


class RowError(ValueError):
    """A row that cannot be read; the message is `file:line: field 'x': why`."""

    def __init__(self, source: str, line: int, field: Optional[str], message: str):
        where = f"{source}:{line}"
        super().__init__(f"{where}: field '{field}': {message}" if field else f"{where}: {message}")
        self.source, self.line, self.field = source, line, field


@dataclasses.dataclass(frozen=True)
class Rating:
    user_id: str
    movie_id: str
    rating: float
    timestamp: int

    def as_row(self) -> Tuple[str, str, str, str]:
        return (self.user_id, self.movie_id, format(self.rating, "g"), str(self.timestamp))


def decode_line(raw: bytes, source: str, line: int, columns: Sequence[str] = ()) -> str:
    """The line as text; bytes that are not UTF-8 fail naming the field they are in (by `columns`)."""
    try:
        return raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as e:
        field = None
        if columns:
            undecodable = [i for i, value in enumerate(raw.split(b",")) if _not_utf8(value)]
            field = columns[undecodable[0]] if undecodable and undecodable[0] < len(columns) else None
        raise RowError(source, line, field, f"not valid UTF-8 ({e.reason})") from None


def _not_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
        return False
    except UnicodeDecodeError:
        return True


@dataclasses.dataclass(frozen=True)
class Header:
    """A ratings file's columns: their names as written, and where each canonical column is."""
    names: Tuple[str, ...]
    positions: Tuple[int, ...]  # field index of user_id, movie_id, rating, timestamp
    ignored: Tuple[str, ...] = ()

    @classmethod
    def canonical(cls) -> "Header":
        return cls(features.RATINGS_COLUMNS, tuple(range(len(features.RATINGS_COLUMNS))))

    def describe(self) -> str:
        return ",".join(self.names)


def split_fields(text: str, source: str, line: int) -> List[str]:
    """The fields of one line (without its line end) as csv.reader reads them.

    Plain lines are split on commas; a line with a quote (or a stray carriage return) goes
    through csv.reader, and a quoted field left open at the line end is refused.
    """
    if '"' not in text and "\r" not in text:
        return text.split(",")
    try:
        fields = next(csv.reader([text + "\n"]))
    except csv.Error as e:
        raise RowError(source, line, None, f"unreadable row ({e})") from None
    if any("\n" in field for field in fields):
        raise RowError(source, line, None, "a quoted field runs past the end of the line (line breaks "
                       "inside quoted fields are not supported)")
    return fields


def read_header(first_line: bytes, source: str, names: Mapping[str, str] = CANONICAL_NAMES) -> Header:
    """The header of a ratings file: each canonical column found by its name (`names` maps the
    names a file may use to canonical columns). Fails naming what is missing or repeated."""
    expected = ",".join(names)
    if not first_line.strip():
        raise RowError(source, 1, None, f"empty file, expected the header {expected!r}")
    text = decode_line(first_line.removeprefix(codecs.BOM_UTF8), source, 1)
    found = tuple(name.strip() for name in split_fields(text, source, 1))
    columns = [names.get(name) for name in found]
    missing = [name for name, column in names.items() if column not in columns]
    repeated = sorted({name for name, column in zip(found, columns) if column and columns.count(column) > 1})
    if missing or repeated:
        why = (f"no column {', '.join(map(repr, missing))}" if missing
               else f"column {', '.join(map(repr, repeated))} more than once")
        hint = ("; MovieLens ratings.csv: movierec data import --format movielens-latest"
                if names is CANONICAL_NAMES and set(MOVIELENS_NAMES) <= set(found) else "")
        raise RowError(source, 1, None, f"header is {text!r}: {why} (expected {expected!r}, "
                       f"in any order{hint})")
    header = Header(found, tuple(columns.index(column) for column in features.RATINGS_COLUMNS),
                    tuple(name for name, column in zip(found, columns) if column is None))
    if header.ignored:
        logging.warning("%s:1: ignoring column(s) %s (not one of %s)", source,
                        ", ".join(map(repr, header.ignored)), expected)
    return header


def parse_id(value: str, source: str, line: int, field: str) -> str:
    value = value.strip()
    if not value:
        raise RowError(source, line, field, "empty ID")
    return value


def parse_rating_value(value: str, source: str, line: int,
                       rating_range: Optional[Tuple[float, float]] = None) -> float:
    try:
        rating = float(value)
    except ValueError:
        raise RowError(source, line, features.RATING, f"not a number: {value!r}") from None
    if not math.isfinite(rating):
        raise RowError(source, line, features.RATING, f"not a finite number: {value!r}")
    if rating_range and not rating_range[0] <= rating <= rating_range[1]:
        raise RowError(source, line, features.RATING,
                       f"{rating:g} is outside [{rating_range[0]:g}, {rating_range[1]:g}]")
    return rating


def parse_timestamp(value: str, source: str, line: int) -> int:
    try:
        # Some exports write timestamps as floats ("881250949.0"); they are whole seconds.
        seconds = float(value)
    except ValueError:
        raise RowError(source, line, features.TIMESTAMP, f"not a number: {value!r}") from None
    if not math.isfinite(seconds) or seconds != int(seconds):
        raise RowError(source, line, features.TIMESTAMP, f"not whole seconds: {value!r}")
    return int(seconds)


def parse_fields(fields: Sequence[str], source: str, line: int,
                 rating_range: Optional[Tuple[float, float]] = None, header: Optional[Header] = None) -> Rating:
    """Parses one row's fields (laid out as `header` says, canonical by default) into a typed Rating."""
    header = header or Header.canonical()
    if len(fields) != len(header.names):
        raise RowError(source, line, None,
                       f"expected {len(header.names)} fields ({header.describe()}), got {len(fields)}")
    user_id, movie_id, rating, timestamp = (fields[i] for i in header.positions)
    return Rating(
        user_id=parse_id(user_id, source, line, features.USER_ID),
        movie_id=parse_id(movie_id, source, line, features.MOVIE_ID),
        rating=parse_rating_value(rating, source, line, rating_range),
        timestamp=parse_timestamp(timestamp, source, line),
    )


def split_lines(data: bytes) -> List[bytes]:
    """The lines of `data` with their line ends, cut at each LF only (a CRLF line keeps its CR;
    bytes.splitlines would also cut at a lone CR, which csv.reader refuses inside a row)."""
    lines = [line + b"\n" for line in data.split(b"\n")]
    lines[-1] = lines[-1][:-1]
    return lines if lines[-1] else lines[:-1]


def parse_lines(lines: Iterable[bytes], source: str, first_line: int,
                rating_range: Optional[Tuple[float, float]] = None,
                header: Optional[Header] = None) -> Iterator[Tuple[int, Rating]]:
    """(line number, rating) of rating rows given as raw lines (with their line ends), numbered
    from `first_line`; blank lines are skipped.

    A non-blank line without a line end can only be the end of a file cut short (a writer killed
    mid-write): it is rejected, even if what is left of it happens to parse.
    """
    header = header or Header.canonical()
    for line_no, raw in enumerate(lines, start=first_line):
        text = decode_line(raw, source, line_no, header.names)
        if not text.strip():
            continue
        if not raw.endswith(b"\n"):
            raise RowError(source, line_no, None, f"last line {text!r} has no line end: the file looks "
                           "truncated (a complete file ends with a newline)")
        yield line_no, parse_fields(split_fields(text, source, line_no), source, line_no, rating_range, header)


def read_ratings(lines: Iterable[bytes], source: str, rating_range: Optional[Tuple[float, float]] = None,
                 names: Mapping[str, str] = CANONICAL_NAMES) -> Iterator[Rating]:
    """Parses a ratings CSV given as raw lines (a binary file): header first, then one rating per line."""
    lines = iter(lines)
    header = read_header(next(lines, b""), source, names)
    for _, rating in parse_lines(lines, source, 2, rating_range, header):
        yield rating
