"""Importers: each format to the canonical layout, and bad rows rejected with file, line, field."""
import pathlib

import pytest

from ratings import importers
from ratings.errors import DataError
from tests.helpers import write_csv

CANONICAL_HEADER = "user_id,movie_id,rating,timestamp"


def read_rows(path: pathlib.Path):
    return [line.split(",") for line in path.read_text().splitlines()]


def test_movielens_100k_folder(tmp_path, rating_range):
    src = tmp_path / "ml-100k"
    src.mkdir()
    (src / "u.data").write_text("196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    genre_flags = "|".join(["0"] * 19)
    flags_toy_story = "|".join("1" if i in (3, 4, 5) else "0" for i in range(19))
    (src / "u.item").write_bytes(
        f"242|Kolya (1996)|24-Jan-1997||http://x|{genre_flags}\n".encode("latin-1")
        + f"302|L.A. Confidential (1997)|01-Jan-1997||http://y|{flags_toy_story}\n".encode("latin-1")
        + f"1|Caf\xe9 (1995)|01-Jan-1995||u|{genre_flags}\n".encode("latin-1"))
    (src / "u.user").write_text("196|49|M|writer|55105\n186|39|F|executive|00000\n")
    summary = importers.import_dataset("movielens-100k", src, tmp_path / "out", rating_range)
    assert (summary.ratings, summary.users, summary.movies) == (2, 2, 2)
    assert read_rows(tmp_path / "out" / "ratings.csv") == [
        CANONICAL_HEADER.split(","), ["196", "242", "3", "881250949"], ["186", "302", "3", "891717742"]]
    movies = (tmp_path / "out" / "movies.csv").read_text(encoding="utf-8").splitlines()
    assert movies[2] == "302,L.A. Confidential,1997,Animation|Children's|Comedy"
    assert movies[3] == "1,Café,1995,"
    assert (tmp_path / "out" / "users.csv").read_text().splitlines()[1] == "196,49,M,writer,55105"


def test_movielens_1m(tmp_path, rating_range):
    src = tmp_path / "ml-1m"
    src.mkdir()
    (src / "ratings.dat").write_text("1::1193::5::978300760\n2::661::3::978302109\n")
    (src / "movies.dat").write_bytes("1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n".encode("latin-1"))
    (src / "users.dat").write_text("1::F::1::10::48067\n")
    summary = importers.import_dataset("movielens-1m", src / "ratings.dat", tmp_path / "out", rating_range)
    assert summary.ratings == 2
    assert read_rows(tmp_path / "out" / "ratings.csv")[1] == ["1", "1193", "5", "978300760"]
    assert (tmp_path / "out" / "users.csv").read_text().splitlines()[1] == "1,1,F,K-12 student,48067"
    assert "1193,One Flew Over the Cuckoo's Nest,1975,Drama" in (tmp_path / "out" / "movies.csv").read_text()


def test_movielens_latest_keeps_half_stars(tmp_path, rating_range):
    src = write_csv(tmp_path / "ml-latest" / "ratings.csv", "userId,movieId,rating,timestamp",
                    ["1,1,4.0,964982703", "1,3,3.5,964981247"])
    write_csv(src.parent / "movies.csv", "movieId,title,genres",
              ['1,"Toy Story (1995)",Adventure|Animation', '3,"Grumpier Old Men, The (1995)",(no genres listed)'])
    importers.import_dataset("movielens-latest", src.parent, tmp_path / "out", rating_range)
    assert read_rows(tmp_path / "out" / "ratings.csv")[2] == ["1", "3", "3.5", "964981247"]
    movies = (tmp_path / "out" / "movies.csv").read_text().splitlines()
    assert movies[2] == '3,"Grumpier Old Men, The",1995,'


def test_canonical_csv_roundtrip(tmp_path, rating_range):
    src = write_csv(tmp_path / "in" / "ratings.csv", CANONICAL_HEADER, ["u1,m1,4.5,100", "u2,m1,1,200"])
    summary = importers.import_dataset("csv", src, tmp_path / "out", rating_range)
    assert summary.ratings == 2 and summary.users == 2 and summary.movies == 1
    assert (tmp_path / "out" / "ratings.csv").read_text() == src.read_text()


@pytest.mark.parametrize("row, line, message", [
    ("u1,m1,high,100", 3, "field 'rating': not a number: 'high'"),
    ("u1,m1,5.5,100", 3, "field 'rating': 5.5 is outside [0.5, 5]"),
    ("u1,m1,0,100", 3, "field 'rating': 0 is outside [0.5, 5]"),
    (",m1,4,100", 3, "field 'user_id': empty ID"),
    ("u1, ,4,100", 3, "field 'movie_id': empty ID"),
    ("u1,m1,4,yesterday", 3, "field 'timestamp': not a number: 'yesterday'"),
    ("u1,m1,4", 3, "expected 4 fields (user_id,movie_id,rating,timestamp), got 3"),
    ("u1,m1,nan,100", 3, "field 'rating': not a finite number: 'nan'"),
])
def test_bad_row_names_file_line_field(tmp_path, rating_range, row, line, message):
    src = write_csv(tmp_path / "ratings.csv", CANONICAL_HEADER, ["u0,m0,3,50", row])
    with pytest.raises(DataError) as raised:
        importers.import_dataset("csv", src, tmp_path / "out", rating_range)
    assert str(raised.value) == f"{src}:{line}: {message}"


def test_failed_import_leaves_destination_untouched(tmp_path, rating_range):
    dest = tmp_path / "out"
    good = write_csv(tmp_path / "good" / "ratings.csv", CANONICAL_HEADER, ["u1,m1,4,1"])
    importers.import_dataset("csv", good, dest, rating_range)
    before = (dest / "ratings.csv").read_text()
    bad = write_csv(tmp_path / "bad" / "ratings.csv", CANONICAL_HEADER, ["u1,m1,4,1", "u2,m2,9,2"])
    with pytest.raises(DataError):
        importers.import_dataset("csv", bad, dest, rating_range)
    assert (dest / "ratings.csv").read_text() == before
    assert sorted(p.name for p in dest.iterdir()) == ["ratings.csv"]


def test_wrong_header_and_bad_encoding(tmp_path, rating_range):
    src = write_csv(tmp_path / "ratings.csv", "user,item,rating,ts", ["u1,m1,4,1"])
    with pytest.raises(DataError, match=r"ratings.csv:1: header is 'user,item,rating,ts'"):
        importers.import_dataset("csv", src, tmp_path / "out", rating_range)
    src.write_bytes(CANONICAL_HEADER.encode() + b"\nu1,m\xff1,4,1\n")
    with pytest.raises(DataError, match=r"ratings.csv:2: field 'movie_id': not valid UTF-8"):
        importers.import_dataset("csv", src, tmp_path / "out", rating_range)


def test_missing_source_and_empty_input(tmp_path, rating_range):
    with pytest.raises(DataError, match="no such file or folder"):
        importers.import_dataset("csv", tmp_path / "nope.csv", tmp_path / "out", rating_range)
    src = write_csv(tmp_path / "ratings.csv", CANONICAL_HEADER, [])
    with pytest.raises(DataError, match="no ratings found"):
        importers.import_dataset("csv", src, tmp_path / "out", rating_range)
    assert not (tmp_path / "out" / "ratings.csv").exists()


def test_import_leaves_no_side_table_of_an_earlier_import(tmp_path, rating_range):
    """A ratings-only import into the folder of an import with side tables: the old movies.csv
    and users.csv would be joined onto ratings they do not describe; they are removed."""
    src = write_csv(tmp_path / "with-tables" / "ratings.csv", CANONICAL_HEADER, ["u1,m1,4,1"])
    write_csv(src.parent / "movies.csv", "movie_id,title,year,genres", ["m1,Heat,1995,Action"])
    write_csv(src.parent / "users.csv", "user_id,age,gender,occupation,zip", ["u1,24,M,writer,55105"])
    dest = tmp_path / "data"
    importers.import_dataset("csv", src, dest, rating_range)
    assert sorted(p.name for p in dest.iterdir()) == ["movies.csv", "ratings.csv", "users.csv"]
    only = write_csv(tmp_path / "ratings-only" / "ratings.csv", CANONICAL_HEADER, ["u7,m7,3,2"])
    summary = importers.import_dataset("csv", only, dest, rating_range)
    assert sorted(p.name for p in dest.iterdir()) == ["ratings.csv"]
    assert summary.describe().endswith("; removed movies.csv, users.csv left there by an earlier import")


def test_import_refuses_a_folder_with_other_ratings(tmp_path, rating_range):
    src = write_csv(tmp_path / "in" / "ratings.csv", CANONICAL_HEADER, ["u1,m1,4,1"])
    dest = tmp_path / "data"
    write_csv(dest / "ratings-2025.csv", CANONICAL_HEADER, ["u2,m2,4,1"])
    (dest / "span-1").mkdir()
    with pytest.raises(DataError, match=r"data: holds ratings-2025.csv, span-1, which `movierec run --data .*` "
                                        r"would read besides the imported ratings; import into an empty folder"):
        importers.import_dataset("csv", src, dest, rating_range)
    assert not (dest / "ratings.csv").exists()
