"""Readers for the rating datasets users already have, all producing the canonical layout.

Every reader streams its input, reports the first bad row as `file:line: field 'x': why` and
raises; nothing is written unless every row of every file was read (see canonical.write_dataset).
"""
import pathlib
import re
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Tuple

from ratings import features, records, side_tables
from ratings.records import Rating, RowError
from ratings import canonical
from ratings.side_tables import Movie, User
from ratings.errors import DataError

RatingRange = Optional[Tuple[float, float]]

# The 19 genre flags of GroupLens' u.item, in column order (as listed in u.genre).
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western")
# Occupation codes of MovieLens-1M's users.dat (from its README).
ML1M_OCCUPATIONS = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist",
    "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer")
_TITLE_YEAR = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})\)\s*$")


def split_lines(path: pathlib.Path, separator: str, encoding: str = "utf-8",
                header: Optional[str] = None) -> Iterator[Tuple[int, List[str]]]:
    """Yields (line number, fields) of a delimited text file; checks the header line if given."""
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            try:
                text = raw.decode(encoding).rstrip("\r\n")
            except UnicodeDecodeError as e:
                raise RowError(str(path), line_no, None, f"not valid {encoding} text ({e.reason})")
            if line_no == 1 and header is not None:
                if text.strip() != header:
                    raise RowError(str(path), 1, None, f"header is {text!r}, expected {header!r}")
                continue
            if text.strip():
                yield line_no, text.split(separator)


def ratings_from_lines(path: pathlib.Path, separator: str, rating_range: RatingRange,
                       header: Optional[str] = None) -> Iterator[Rating]:
    for line_no, fields in split_lines(path, separator, header=header):
        yield records.parse_fields(fields, str(path), line_no, rating_range)


def ratings_from_csv(path: pathlib.Path, rating_range: RatingRange,
                     names: Mapping[str, str] = records.CANONICAL_NAMES) -> Iterator[Rating]:
    """A ratings CSV as any tool writes it (see records.py), its columns found by `names`."""
    with open(path, "rb") as f:
        yield from records.read_ratings(f, str(path), rating_range, names)


def _title_and_year(title: str) -> Tuple[str, Optional[int]]:
    match = _TITLE_YEAR.match(title)
    return (match["title"], int(match["year"])) if match else (title.strip(), None)


def _require(path: pathlib.Path, description: str) -> pathlib.Path:
    if not path.is_file():
        raise DataError(f"{path}: not found ({description})")
    return path


# --- GroupLens MovieLens-100K (u.data, u.item, u.user) ---------------------------------------

def _ml100k_movies(path: pathlib.Path) -> Iterator[Movie]:
    for line_no, fields in split_lines(path, "|", encoding="latin-1"):
        if len(fields) != 5 + len(ML100K_GENRES):
            raise RowError(str(path), line_no, None,
                           f"expected {5 + len(ML100K_GENRES)} fields, got {len(fields)}")
        movie_id = records.parse_id(fields[0], str(path), line_no, features.MOVIE_ID)
        title, year = _title_and_year(fields[1])
        release = fields[2].strip()
        if year is None and release[-4:].isdigit():
            year = int(release[-4:])
        genres = tuple(g for g, flag in zip(ML100K_GENRES, fields[5:]) if flag.strip() == "1")
        yield Movie(movie_id, title, year, genres)


def _delimited_users(path: pathlib.Path, separator: str,
                     header: Optional[str] = None) -> Iterator[User]:
    """Users as `id, age, gender, occupation, zip` fields (GroupLens u.user, RecBole .user)."""
    for line_no, fields in split_lines(path, separator, header=header):
        if len(fields) != len(features.USERS_COLUMNS):
            raise RowError(str(path), line_no, None,
                           f"expected {len(features.USERS_COLUMNS)} fields, got {len(fields)}")
        user_id = records.parse_id(fields[0], str(path), line_no, features.USER_ID)
        age = side_tables.optional_int(fields[1], str(path), line_no, "age")
        yield User(user_id, age, fields[2].strip(), fields[3].strip(), fields[4].strip())


def import_movielens_100k(src: pathlib.Path, dest: pathlib.Path,
                          rating_range: RatingRange) -> canonical.ImportSummary:
    folder = src if src.is_dir() else src.parent
    ratings_path = _require(folder / "u.data" if src.is_dir() else src, "MovieLens-100K u.data")
    movies = list(_ml100k_movies(folder / "u.item")) if (folder / "u.item").is_file() else []
    users = list(_delimited_users(folder / "u.user", "|")) if (folder / "u.user").is_file() else []
    return canonical.write_dataset(dest, ratings_from_lines(ratings_path, "\t", rating_range),
                                   movies, users)


# --- The same MovieLens-100K as shipped in RecBole's atomic files (.inter, .item, .user) -------

RECBOLE_HEADERS = {
    "inter": "user_id:token\titem_id:token\trating:float\ttimestamp:float",
    "item": "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq",
    "user": "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token",
}


def _recbole_movies(path: pathlib.Path) -> Iterator[Movie]:
    for line_no, fields in split_lines(path, "\t", header=RECBOLE_HEADERS["item"]):
        if len(fields) != 4:
            raise RowError(str(path), line_no, None, f"expected 4 fields, got {len(fields)}")
        movie_id = records.parse_id(fields[0], str(path), line_no, features.MOVIE_ID)
        title, title_year = _title_and_year(fields[1])
        # RecBole's copy has a few placeholders here ("unkonwn", "V"): the year is then unknown.
        year = int(fields[2]) if fields[2].strip().isdigit() else title_year
        yield Movie(movie_id, title, year, tuple(fields[3].split()))


def import_recbole_100k(folder: pathlib.Path, dest: pathlib.Path,
                        rating_range: RatingRange) -> canonical.ImportSummary:
    """Imports `ml-100k.{inter,item,user}` as found in the recbole wheel."""
    ratings_path = _require(folder / "ml-100k.inter", "RecBole MovieLens-100K ratings")
    movies = list(_recbole_movies(_require(folder / "ml-100k.item", "RecBole movies")))
    users = list(_delimited_users(_require(folder / "ml-100k.user", "RecBole users"), "\t",
                                  header=RECBOLE_HEADERS["user"]))
    ratings = ratings_from_lines(ratings_path, "\t", rating_range, header=RECBOLE_HEADERS["inter"])
    return canonical.write_dataset(dest, ratings, movies, users)


# --- GroupLens MovieLens-1M (ratings.dat, movies.dat, users.dat with '::') ---------------------

def _ml1m_movies(path: pathlib.Path) -> Iterator[Movie]:
    for line_no, raw_fields in split_lines(path, "::", encoding="latin-1"):
        if len(raw_fields) != 3:
            raise RowError(str(path), line_no, None, f"expected 3 fields, got {len(raw_fields)}")
        movie_id = records.parse_id(raw_fields[0], str(path), line_no, features.MOVIE_ID)
        title, year = _title_and_year(raw_fields[1])
        yield Movie(movie_id, title, year, tuple(g for g in raw_fields[2].split("|") if g))


def _ml1m_users(path: pathlib.Path) -> Iterator[User]:
    for line_no, fields in split_lines(path, "::"):
        if len(fields) != 5:
            raise RowError(str(path), line_no, None, f"expected 5 fields, got {len(fields)}")
        user_id = records.parse_id(fields[0], str(path), line_no, features.USER_ID)
        code = side_tables.optional_int(fields[3], str(path), line_no, "occupation")
        if code is None or not 0 <= code < len(ML1M_OCCUPATIONS):
            raise RowError(str(path), line_no, "occupation", f"unknown code {fields[3]!r}")
        age = side_tables.optional_int(fields[2], str(path), line_no, "age")
        yield User(user_id, age, fields[1], ML1M_OCCUPATIONS[code], fields[4])


def import_movielens_1m(src: pathlib.Path, dest: pathlib.Path,
                        rating_range: RatingRange) -> canonical.ImportSummary:
    folder = src if src.is_dir() else src.parent
    ratings_path = _require(folder / "ratings.dat" if src.is_dir() else src,
                            "MovieLens-1M ratings.dat")
    movies = list(_ml1m_movies(folder / "movies.dat")) if (folder / "movies.dat").is_file() else []
    users = list(_ml1m_users(folder / "users.dat")) if (folder / "users.dat").is_file() else []
    return canonical.write_dataset(dest, ratings_from_lines(ratings_path, "::", rating_range),
                                   movies, users)


# --- GroupLens "latest" / 20M / 25M (ratings.csv, movies.csv with headers) --------------------

def _latest_movies(path: pathlib.Path) -> Iterator[Movie]:
    with open(path, newline="", encoding="utf-8-sig") as stream:
        rows = list(side_tables.csv_rows(stream, str(path), ("movieId", "title", "genres")))
    for line_no, row in rows:
        movie_id = records.parse_id(row["movieId"], str(path), line_no, features.MOVIE_ID)
        title, year = _title_and_year(row["title"])
        genres = tuple(g for g in row["genres"].split("|") if g and g != "(no genres listed)")
        yield Movie(movie_id, title, year, genres)


def import_movielens_latest(src: pathlib.Path, dest: pathlib.Path,
                            rating_range: RatingRange) -> canonical.ImportSummary:
    folder = src if src.is_dir() else src.parent
    ratings_path = _require(folder / "ratings.csv" if src.is_dir() else src,
                            "MovieLens ratings.csv")
    movies = list(_latest_movies(folder / "movies.csv")) if (folder / "movies.csv").is_file() else []
    return canonical.write_dataset(dest, ratings_from_csv(ratings_path, rating_range, records.MOVIELENS_NAMES),
                                   movies)


# --- Canonical CSVs (ratings.csv plus optional movies.csv / users.csv) ------------------------

def import_canonical_csv(src: pathlib.Path, dest: pathlib.Path,
                         rating_range: RatingRange) -> canonical.ImportSummary:
    folder = src if src.is_dir() else src.parent
    ratings_path = _require(folder / features.RATINGS_FILE if src.is_dir() else src,
                            "canonical ratings CSV")
    movies_path, users_path = folder / features.MOVIES_FILE, folder / features.USERS_FILE
    movies = side_tables.read_movies(str(movies_path)) if movies_path.is_file() else []
    users = side_tables.read_users(str(users_path)) if users_path.is_file() else []
    return canonical.write_dataset(dest, ratings_from_csv(ratings_path, rating_range), movies, users)


IMPORTERS: Dict[str, Callable[[pathlib.Path, pathlib.Path, RatingRange], canonical.ImportSummary]] = {
    "movielens-100k": import_movielens_100k,
    "movielens-1m": import_movielens_1m,
    "movielens-latest": import_movielens_latest,
    "csv": import_canonical_csv,
}


def import_dataset(fmt: str, src: pathlib.Path, dest: pathlib.Path,
                   rating_range: RatingRange) -> canonical.ImportSummary:
    """Imports `src` in format `fmt` into the canonical layout in `dest`; raises DataError."""
    if not src.exists():
        raise DataError(f"{src}: no such file or folder")
    try:
        return IMPORTERS[fmt](src, dest, rating_range)
    except (RowError, ValueError) as e:
        raise DataError(str(e)) from e
