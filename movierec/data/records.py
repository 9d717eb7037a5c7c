"""Parsing one canonical ratings row, with errors that name the file, line and field.

Shared by the importers (which also enforce the schema's rating range) and by the ExampleGen
executor (which only enforces types: range checks there belong to ExampleValidator).
"""
import dataclasses
import math
from typing import Iterable, Iterator, Optional, Sequence, Tuple

from movierec.data import features


RATINGS_HEADER = ",".join(features.RATINGS_COLUMNS)


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


def check_header(first_line: bytes, source: str) -> None:
    """Fails on a file whose first line is not the canonical ratings header."""
    if not first_line:
        raise RowError(source, 1, None, f"empty file, expected the header {RATINGS_HEADER!r}")
    header = decode_line(first_line, source, 1)
    if header.strip() != RATINGS_HEADER:
        raise RowError(source, 1, None, f"header is {header!r}, expected {RATINGS_HEADER!r}")


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
                 rating_range: Optional[Tuple[float, float]] = None) -> Rating:
    """Parses `user_id, movie_id, rating, timestamp` values into a typed Rating."""
    if len(fields) != len(features.RATINGS_COLUMNS):
        raise RowError(source, line, None,
                       f"expected {len(features.RATINGS_COLUMNS)} fields "
                       f"({','.join(features.RATINGS_COLUMNS)}), got {len(fields)}")
    user_id, movie_id, rating, timestamp = fields
    return Rating(
        user_id=parse_id(user_id, source, line, features.USER_ID),
        movie_id=parse_id(movie_id, source, line, features.MOVIE_ID),
        rating=parse_rating_value(rating, source, line, rating_range),
        timestamp=parse_timestamp(timestamp, source, line),
    )


def parse_lines(lines: Iterable[bytes], source: str, first_line: int,
                rating_range: Optional[Tuple[float, float]] = None) -> Iterator[Tuple[int, Rating]]:
    """(line number, rating) of rating rows given as raw lines (with their line ends), numbered
    from `first_line`; blank lines are skipped.

    A non-blank line without a line end can only be the end of a file cut short (a writer killed
    mid-write): it is rejected, even if what is left of it happens to parse.
    """
    for line_no, raw in enumerate(lines, start=first_line):
        text = decode_line(raw, source, line_no, features.RATINGS_COLUMNS)
        if not text.strip():
            continue
        if not raw.endswith(b"\n"):
            raise RowError(source, line_no, None, f"last line {text!r} has no line end: the file looks "
                           "truncated (a complete file ends with a newline)")
        yield line_no, parse_fields(text.split(","), source, line_no, rating_range)


def read_ratings(lines: Iterable[bytes], source: str) -> Iterator[Rating]:
    """Parses a canonical ratings CSV given as raw lines: header first, then one rating per line."""
    lines = iter(lines)
    check_header(next(lines, b""), source)
    for _, rating in parse_lines(lines, source, 2):
        yield rating
