"""Ratings files as real tools write them are ingested row for row, as Python's csv.reader reads them.

Writers: the standard library's csv.writer (default 'excel' dialect: CRLF, quotes only where
needed), pandas' DataFrame.to_csv (LF, index written as an unnamed first column), the byte layout
of Excel's "CSV UTF-8 (Comma delimited)" export (a UTF-8 byte-order mark, CRLF line ends, fields
quoted RFC 4180 style where they hold a comma or quote; Excel itself cannot run here, so these
bytes are written out literally), and GroupLens' MovieLens ml-latest ratings.csv / movies.csv as
shipped (LF, `userId,movieId,rating,timestamp`, titles quoted where they hold a comma), which go
through `data import --format movielens-latest`.

Referee: csv.reader (CPython's Modules/_csv.c, `Reader_iternext`) over the file opened with
newline="" and encoding utf-8-sig; its rows, IDs stripped of surrounding spaces, must equal what
the ExampleGen executor ingests, row for row, IDs byte-exact.
"""
import csv
import io
import pathlib

import hypothesis
import pytest
from hypothesis import strategies as st

from components.example_gen import executor as example_gen
from ratings import records
from ratings import importers
from tests.helpers import COLUMNS, RATING_RANGE, ROWS, WRITERS, excel_csv, pair, python_csv, referee, run_executor

EXCEL_CSV_UTF8 = ("\ufeffuser_id,movie_id,rating,timestamp\r\n007,m1,4,881250949\r\n7,m1,3.5,881250950\r\n"
                  '"u,comma","say ""hi""",5,881250951\r\nAmélie fan,Amélie (2001),2,881250952\r\n'
                  '7,007,1,881250953\r\nu 9,"m,2",0.5,1\r\n').encode("utf-8")
# The first ratings of GroupLens' ml-latest-small ratings.csv, byte for byte.
MOVIELENS_RATINGS = (b"userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.0,964981247\n"
                     b"1,6,4.0,964982224\n1,47,5.0,964983815\n1,50,5.0,964982931\n")
MOVIELENS_MOVIES = (b"movieId,title,genres\n1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n"
                    b'3,"Grumpier Old Men, The (1995)",Comedy|Romance\n')


def ingested(path: pathlib.Path, chunk_bytes=None):
    """What the executor's chunk planning and parsing (fast path or line by line) make of the file."""
    out = []
    for chunk in example_gen.plan_chunks((0, str(path)), RATING_RANGE, chunk_bytes):
        for rows in example_gen.parse_chunk(chunk):
            out += zip(rows.user_ids, rows.movie_ids, rows.ratings.astype(float), rows.timestamps.astype(int))
    return [(u, m, r, int(t)) for u, m, r, t in out]



@pytest.mark.parametrize("writer", WRITERS)
def test_every_row_as_csv_reader_reads_it(tmp_path, writer):
    path = WRITERS[writer](tmp_path / "ratings.csv")
    expected = referee(path)
    assert len(expected) == (4 if writer == "hand-edited" else len(ROWS))
    assert ingested(path) == expected
    assert ingested(path, chunk_bytes=16) == expected


def test_excel_layout_is_the_documented_one(tmp_path):
    assert excel_csv(tmp_path / "ratings.csv").read_bytes() == EXCEL_CSV_UTF8


def test_crlf_and_quoted_rows_across_chunk_boundaries(tmp_path):
    """The reported case: csv.writer's CRLF; cut every ~4 KB, quotes in some chunks only."""
    rows = [(f"u{i % 997}", f'm,{i}' if i % 2000 == 0 else f"m{i}", 1 + i % 5, 879959583 + i) for i in range(20_000)]
    path = python_csv(tmp_path / "ratings.csv", rows)
    chunks = list(example_gen.plan_chunks((0, str(path)), RATING_RANGE, chunk_bytes=4096))
    assert len(chunks) > 75 and all(raw.endswith(b"\r\n") for raw in map(example_gen._read_chunk, chunks))
    assert ingested(path, chunk_bytes=4096) == referee(path)


@hypothesis.settings(max_examples=60, deadline=None,
                     suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture])
@hypothesis.given(
    rows=st.lists(st.tuples(
        st.text(st.sampled_from('0u7, "é'), min_size=1, max_size=6).filter(str.strip),
        st.text(st.sampled_from('0m7, "é'), min_size=1, max_size=6).filter(str.strip),
        st.sampled_from(["1", "3.5", " 4 ", "5.0"]), st.integers(0, 2**40),
        st.sampled_from(["\n", "\r\n"])), min_size=1, max_size=60),
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]),
    bom=st.booleans(), blank_end=st.booleans(), chunk_bytes=st.integers(8, 300))
def test_every_row_exactly_once_for_any_line_ends(tmp_path, rows, quoting, bom, blank_end, chunk_bytes):
    """Generated files (any mix of LF / CRLF, quoting, BOM, trailing blank line, chunk size):
    every row is ingested exactly once, in order, as csv.reader reads it."""
    text = io.StringIO()
    csv.writer(text, lineterminator="\r\n", quoting=quoting).writerow(COLUMNS)
    for user, movie, rating, timestamp, line_end in rows:
        csv.writer(text, lineterminator=line_end, quoting=quoting).writerow([user, movie, rating, timestamp])
    path = tmp_path / "ratings.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.getvalue().encode() + (b"\n" if blank_end else b""))
    expected = referee(path)
    assert len(expected) == len(rows)
    assert ingested(path, chunk_bytes) == expected


def test_movielens_latest_as_shipped_goes_through_import(tmp_path, rating_range):
    src = tmp_path / "ml-latest-small"
    src.mkdir()
    (src / "ratings.csv").write_bytes(MOVIELENS_RATINGS)
    (src / "movies.csv").write_bytes(MOVIELENS_MOVIES)
    importers.import_dataset("movielens-latest", src, tmp_path / "data", rating_range)
    expected = referee(src / "ratings.csv", records.MOVIELENS_NAMES)
    assert len(expected) == 5 and ingested(tmp_path / "data" / "ratings.csv") == expected
    # The same bytes given to `movierec run` directly: refused, pointing at the import.
    with pytest.raises(records.RowError, match="movierec data import --format movielens-latest"):
        ingested(src / "ratings.csv")


def test_executor_writes_each_tools_rows_once_per_given_split(tmp_path):
    """One executor run over given splits holding every writer's file: examples out equal the
    referee's rows, split by split, IDs byte-exact (each file's movies are its own, so no pair repeats)."""
    expected = {"train": [], "eval": []}
    for index, (name, writer) in enumerate(WRITERS.items()):
        split = "train" if index % 2 == 0 else "eval"
        folder = tmp_path / "in" / split
        folder.mkdir(parents=True, exist_ok=True)
        path = writer(folder / f"ratings-{name}.csv", [(u, f"{m}/{name}", r, t) for u, m, r, t in ROWS])
        expected[split] += [(u.encode(), m.encode()) for u, m, _, _ in referee(path)]
    by_split, _ = run_executor(tmp_path / "in", [("train", "train/ratings*.csv"), ("eval", "eval/ratings*.csv")])
    assert {split: sorted(map(pair, out)) for split, out in by_split.items()} == {
        split: sorted(pairs) for split, pairs in expected.items()}
