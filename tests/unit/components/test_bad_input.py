"""Bad ratings files at ingestion: each case fails naming the file, line and field.

These run the ExampleGen executor's code (its chunk parsing, and its Beam transform where the
case needs it) on real files;
tests/test_pipeline_e2e.py checks through `movierec run` that such a failure pushes nothing.
"""
import pytest
import tensorflow as tf

from components.example_gen import executor as example_gen
from ratings import features, records
from tests.helpers import write_csv
from tests.helpers import run_executor

HEADER = ",".join(features.RATINGS_COLUMNS)
GOOD_ROW = "u0,m0,3,50"
RATING_RANGE = (0.5, 5.0)


def ingest(folder, movies=None, users=None):
    """The tf.Examples of folder/ratings.csv, through the executor's Do, as a pipeline runs it."""
    by_split, _ = run_executor(folder, [("train", features.RATINGS_FILE)], movies=movies, users=users)
    return [tf.train.Example.FromString(record) for record in by_split["train"]]


def parse_file(path):
    """What each Beam worker does with its chunks of the file: a bad row raises."""
    for chunk in example_gen.plan_chunks((0, str(path)), RATING_RANGE):
        list(example_gen.parse_chunk(chunk))


def rejected(tmp_path, content: bytes) -> str:
    """The error for a ratings file: row by row checks first (fast), then the whole transform,
    which adds the check for duplicates across rows."""
    path = tmp_path / features.RATINGS_FILE
    path.write_bytes(content)
    with pytest.raises(Exception) as raised:
        parse_file(path)
        ingest(tmp_path)
    error = raised.value
    while error is not None and not isinstance(error, records.RowError):
        error = error.__cause__ or error.__context__
    assert error is not None, f"no RowError in {raised.value!r}"
    return str(error).replace(str(path), "ratings.csv")


def rows(*lines: str) -> bytes:
    return "".join(f"{line}\n" for line in (HEADER, GOOD_ROW, *lines)).encode()


@pytest.mark.parametrize("content, message", [
    pytest.param(b"user_id,movie_id,rating\nu1,m1,4\n",
                 f"ratings.csv:1: header is 'user_id,movie_id,rating': no column 'timestamp' (expected {HEADER!r}, "
                 "in any order)", id="missing-column"),
    pytest.param(b"userId,movieId,rating,timestamp\nu1,m1,4,1\n",
                 "ratings.csv:1: header is 'userId,movieId,rating,timestamp': no column 'user_id', 'movie_id' "
                 f"(expected {HEADER!r}, in any order; MovieLens ratings.csv: movierec data import --format "
                 "movielens-latest)", id="movielens-header"),
    pytest.param(b"user_id,movie_id,rating,timestamp,user_id\nu1,m1,4,1,u2\n",
                 f"ratings.csv:1: header is 'user_id,movie_id,rating,timestamp,user_id': column 'user_id' more than "
                 f"once (expected {HEADER!r}, in any order)", id="repeated-column"),
    pytest.param(rows('u1,"m1\n', 'x",4,1'),
                 "ratings.csv:3: a quoted field runs past the end of the line (line breaks inside quoted fields are "
                 "not supported)", id="quoted-line-break"),
    pytest.param(rows("u1,m\r1,4,1"), "ratings.csv:3: unreadable row (new-line character seen in unquoted field - "
                 "do you need to open the file in universal-newline mode?)", id="lone-carriage-return"),
    pytest.param(rows("u1,m1,4"), "ratings.csv:3: expected 4 fields (user_id,movie_id,rating,timestamp), got 3",
                 id="row-missing-a-field"),
    pytest.param(rows("u1,m1,4,1,extra"),
                 "ratings.csv:3: expected 4 fields (user_id,movie_id,rating,timestamp), got 5", id="extra-field"),
    pytest.param(rows("u1,m1,great,1"), "ratings.csv:3: field 'rating': not a number: 'great'", id="non-numeric"),
    pytest.param(rows("u1,m1,7,1"), "ratings.csv:3: field 'rating': 7 is outside [0.5, 5]", id="out-of-range"),
    pytest.param(rows("u1,m1,nan,1"), "ratings.csv:3: field 'rating': not a finite number: 'nan'", id="nan"),
    pytest.param(rows(",m1,4,1"), "ratings.csv:3: field 'user_id': empty ID", id="empty-user-id"),
    pytest.param(rows("u1, ,4,1"), "ratings.csv:3: field 'movie_id': empty ID", id="empty-movie-id"),
    pytest.param(rows("u1,m1,4,yesterday"), "ratings.csv:3: field 'timestamp': not a number: 'yesterday'",
                 id="timestamp"),
    pytest.param(b"", f"ratings.csv:1: empty file, expected the header {HEADER!r}", id="empty-file"),
    pytest.param(f"{HEADER}\n".encode(), "ratings.csv:2: no ratings after the header", id="header-only"),
    pytest.param(rows() + b"u1,m\xff1,4,1\n", "ratings.csv:3: field 'movie_id': not valid UTF-8 (invalid start byte)",
                 id="non-utf8"),
    pytest.param(rows("u1,m1,4,1", "u2,m1,5,2", "u1,m1,2,3"),
                 "ratings.csv:5: field 'movie_id': duplicated row: user 'u1' already rated movie 'm1' on line 3",
                 id="duplicated-row"),
    pytest.param(rows("u1,m1,4,1") + b"u2,m1,5,88125",
                 "ratings.csv:4: last line 'u2,m1,5,88125' has no line end: the file looks truncated "
                 "(a complete file ends with a newline)", id="truncated-last-line"),
    pytest.param(rows("u1,m1,4,1").replace(b"\n", b"\r\n") + b"u2,m1,5,88125\r",
                 "ratings.csv:4: last line 'u2,m1,5,88125' has no line end: the file looks truncated "
                 "(a complete file ends with a newline)", id="truncated-crlf-file"),
])
def test_bad_file_is_rejected_naming_line_and_field(tmp_path, content, message):
    assert rejected(tmp_path, content) == message


def test_chunks_keep_line_numbers_and_lose_no_row(tmp_path):
    """Files are cut into chunks parsed in parallel; line numbers still count from the top."""
    good = [f"u{i},m{i % 7},4,{i}" for i in range(200)]
    path = write_csv(tmp_path / features.RATINGS_FILE, HEADER, good)
    chunks = list(example_gen.plan_chunks((0, str(path)), RATING_RANGE, chunk_bytes=256))
    assert len(chunks) > 5
    parsed = [rows for chunk in chunks for rows in example_gen.parse_chunk(chunk)]
    assert [int(line) for rows in parsed for line in rows.lines] == list(range(2, 202))
    assert [f"{u},{m},4,{t}" for rows in parsed for u, m, t in zip(rows.user_ids, rows.movie_ids, rows.timestamps)] == good

    write_csv(path, HEADER, good[:150] + ["u1,m1,x,1"] + good[150:])
    with pytest.raises(records.RowError, match=r"ratings.csv:152: field 'rating': not a number: 'x'"):
        for chunk in example_gen.plan_chunks((0, str(path)), RATING_RANGE, chunk_bytes=256):
            list(example_gen.parse_chunk(chunk))


def test_duplicates_are_found_across_files(tmp_path):
    write_csv(tmp_path / "ratings-a.csv", HEADER, ["u1,m1,4,1"])
    write_csv(tmp_path / "ratings-b.csv", HEADER, ["u2,m2,4,1", "u1,m1,3,2"])
    with pytest.raises(Exception, match=r"ratings-b.csv:3: field 'movie_id': duplicated row: user 'u1' already "
                                        r"rated movie 'm1' on .*ratings-a.csv:2"):
        run_executor(tmp_path, [("train", "ratings-*.csv")])


def test_clean_rows_become_typed_examples_with_side_features(tmp_path):
    """Both parsing paths (column-wise, and line by line for odd but valid rows) agree."""
    write_csv(tmp_path / features.MOVIES_FILE, ",".join(features.MOVIES_COLUMNS),
              ["m1,Heat,1995,Action|Crime", "m2,Untitled,,"])
    write_csv(tmp_path / features.USERS_FILE, ",".join(features.USERS_COLUMNS), ["u1,24,M,writer,55105"])
    (tmp_path / features.RATINGS_FILE).write_text(f"{HEADER}\nu1,m1,4.5,100\n u2 ,m2,1,200.0\n\nu1,m3,3,300\n")
    examples = ingest(tmp_path, str(tmp_path / features.MOVIES_FILE), str(tmp_path / features.USERS_FILE))
    by_pair = {(e.features.feature["user_id"].bytes_list.value[0], e.features.feature["movie_id"].bytes_list.value[0]):
               e.features.feature for e in examples}
    assert set(by_pair) == {(b"u1", b"m1"), (b"u2", b"m2"), (b"u1", b"m3")}
    heat = by_pair[(b"u1", b"m1")]
    assert heat["rating"].float_list.value == [4.5] and heat["timestamp"].int64_list.value == [100]
    assert heat["genres"].bytes_list.value == [b"Action", b"Crime"] and heat["year"].int64_list.value == [1995]
    assert heat["occupation"].bytes_list.value == [b"writer"] and heat["age"].int64_list.value == [24]
    untitled = by_pair[(b"u2", b"m2")]
    assert untitled["title"].bytes_list.value == [b"Untitled"] and untitled["timestamp"].int64_list.value == [200]
    # Unknown to a side table, or no value there: the feature is absent, not empty.
    for feature in ("year", "genres", "age", "gender"):
        assert not untitled[feature].WhichOneof("kind")
    assert not by_pair[(b"u1", b"m3")]["title"].WhichOneof("kind")
