"""The ExampleGen executor's own writing: stable hash splits (also across spans), every row exactly once."""
import collections

import pytest
from tfx.proto import example_gen_pb2

from components.example_gen import executor as example_gen
from ratings import features
from tests.helpers import pair, run_executor, write_csv

HEADER = ",".join(features.RATINGS_COLUMNS)
HASH_SPLIT = example_gen_pb2.SplitConfig(splits=[example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=3),
                                                 example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=1)])


def splits_of_pairs(by_split):
    return {pair(record): split for split, records in by_split.items() for record in records}


def test_hash_split_is_stable_and_keeps_every_row_once(tmp_path, monkeypatch):
    """Chunks of ~8 KB (one file each per split). A rating's split depends on its (user, movie)
    pair only: the same on a rerun, and unchanged when another file (a new span) is added."""
    monkeypatch.setattr(example_gen, "CHUNK_BYTES", 8 << 10)
    rows = [f"u{i // 50},m{i % 50},{1 + i % 5},{i}" for i in range(4_000)]
    write_csv(tmp_path / "in" / "ratings-1.csv", HEADER, rows)
    first, files = run_executor(tmp_path / "in", [("single_split", "ratings-*.csv")], HASH_SPLIT)

    assert len(files["train"]) == len(files["eval"]) > 5
    assert not [f for split_files in files.values() for f in split_files if f.endswith(".tmp")]
    written = collections.Counter(pair(r) for records in first.values() for r in records)
    assert len(written) == len(rows) and set(written.values()) == {1}
    assert 0.2 < len(first["eval"]) / len(rows) < 0.3

    write_csv(tmp_path / "again" / "ratings-1.csv", HEADER, rows)
    write_csv(tmp_path / "again" / "ratings-2.csv", HEADER, [f"u{i},new,4,1" for i in range(500)])
    again, _ = run_executor(tmp_path / "again", [("single_split", "ratings-*.csv")], HASH_SPLIT)
    first_splits, again_splits = splits_of_pairs(first), splits_of_pairs(again)
    assert {p: again_splits[p] for p in first_splits} == first_splits
    assert len(again_splits) == len(rows) + 500


def test_given_splits_are_kept_as_they_are(tmp_path):
    write_csv(tmp_path / "in" / "train" / features.RATINGS_FILE, HEADER, ["u1,m1,4,1", "u1,m2,3,2"])
    write_csv(tmp_path / "in" / "eval" / features.RATINGS_FILE, HEADER, ["u2,m1,5,3"])
    by_split, _ = run_executor(tmp_path / "in", [("train", "train/*.csv"), ("eval", "eval/*.csv")])
    assert {split: sorted(pair(r) for r in records) for split, records in by_split.items()} == {
        "train": [(b"u1", b"m1"), (b"u1", b"m2")], "eval": [(b"u2", b"m1")]}


def test_a_pair_rerated_in_a_later_span_stays_in_its_split(tmp_path):
    """Two spans, one ExampleGen run each (as scheduled runs do); 40 users re-rate movie m0 in
    span 2. Each pair lands in the same split in both spans: the older rating of a pair evaluated
    on is never trained on. (Which of the two the Trainer fits on: test_preprocessing.)"""
    write_csv(tmp_path / "span-1" / "ratings.csv", HEADER,
              [f"u{i},m0,1,{100 + i}" for i in range(40)] + [f"u{i},m1,3,{100 + i}" for i in range(40)])
    write_csv(tmp_path / "span-2" / "ratings.csv", HEADER, [f"u{i},m0,5,{900 + i}" for i in range(40)])
    first, _ = run_executor(tmp_path, [("single_split", "span-1/ratings.csv")], HASH_SPLIT)
    (tmp_path / "output").rename(tmp_path / "output-1")
    second, _ = run_executor(tmp_path, [("single_split", "span-2/ratings.csv")], HASH_SPLIT)
    rerated = {p: split for p, split in splits_of_pairs(first).items() if p[1] == b"m0"}
    assert splits_of_pairs(second) == rerated and set(rerated.values()) == {"train", "eval"}


def test_a_rating_in_two_given_splits_is_refused(tmp_path):
    """Given train/ and eval/ folders are checked for duplicates together: a model is never
    evaluated on a rating it trained on. A file both split patterns match is refused too."""
    write_csv(tmp_path / "in" / "train" / features.RATINGS_FILE, HEADER, ["u1,m1,4,1", "u1,m2,3,2"])
    write_csv(tmp_path / "in" / "eval" / features.RATINGS_FILE, HEADER, ["u2,m1,5,3", "u1,m2,2,4"])
    with pytest.raises(Exception, match=r"eval/ratings.csv:3: field 'movie_id': duplicated row: user 'u1' already "
                                        r"rated movie 'm2' on .*train/ratings.csv:3"):
        run_executor(tmp_path / "in", [("train", "train/*.csv"), ("eval", "eval/*.csv")])
    with pytest.raises(ValueError, match=r"train/ratings.csv: matched by the split patterns 'train/\*.csv' and "
                                         r"'\*/ratings.csv': its ratings would be in two splits"):
        run_executor(tmp_path / "in", [("train", "train/*.csv"), ("eval", "*/ratings.csv")])
