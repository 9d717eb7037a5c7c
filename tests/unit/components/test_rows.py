"""The gates' rows through integer codes equal the rows through bytes objects, order and all.

Referee: the object-array route the gates used before (models/catalog.newest_per_pair's lexsort,
numpy's unique and searchsorted, run directly on arrays of bytes IDs), kept here verbatim. The rows
are generated to catch a fast path that is only nearly right: re-rated pairs (newest kept, ties
of timestamps too), UTF-8 IDs, an eval user and movie not in training, and IDs whose bytes order differs from their first-seen order and
from their numeric order (b"10" < b"9"), read back from real gzipped tf.Examples by rows.read_split.
"""
import os

import numpy as np
import scipy.sparse as sp
import tensorflow as tf
from tfx.types import standard_artifacts

from components import rows
from models.catalog import newest_per_pair
from models.metrics import ranking
from models.rating import baselines
from ratings import features, ids


def _generated(seed: int, n: int = 3000) -> rows.Rows:
    rng = np.random.default_rng(seed)
    users = np.array([f"{u}" for u in range(1, 40)] + ["zoë", "Zoe", "ü", "u\u0308", "用户"], dtype=object)
    movies = np.array([f"{m}" for m in range(1, 120)] + ["film é", "FILM", "映画", " 9"], dtype=object)
    picked_users = users[rng.integers(0, len(users), n)]
    picked_movies = movies[rng.integers(0, len(movies), n)]
    # Few distinct timestamps: many re-rated pairs, some re-rated at the same second.
    timestamps = rng.integers(0, 40, n).astype(np.int64)
    ratings = rng.integers(1, 6, n).astype(np.float32)
    encode = np.vectorize(lambda s: s.encode("utf-8"), otypes=[object])
    return rows.Rows(encode(picked_users), encode(picked_movies), ratings, timestamps)


def _write_split(uri: str, split: str, data: rows.Rows, files: int = 2) -> None:
    """The split as ExampleGen writes it: gzipped TFRecords of tf.Examples, `files` shards of
    consecutive rows (read back in file order, so in the rows' order)."""
    os.makedirs(os.path.join(uri, f"Split-{split}"))
    for shard in range(files):
        path = os.path.join(uri, f"Split-{split}", f"data_tfrecord-{shard:05d}-of-{files:05d}.gz")
        with tf.io.TFRecordWriter(path, options="GZIP") as writer:
            for i in range(shard * len(data) // files, (shard + 1) * len(data) // files):
                writer.write(tf.train.Example(features=tf.train.Features(feature={
                    features.USER_ID: tf.train.Feature(bytes_list=tf.train.BytesList(value=[data.users[i]])),
                    features.MOVIE_ID: tf.train.Feature(bytes_list=tf.train.BytesList(value=[data.movies[i]])),
                    features.RATING: tf.train.Feature(float_list=tf.train.FloatList(value=[data.ratings[i]])),
                    features.TIMESTAMP: tf.train.Feature(int64_list=tf.train.Int64List(value=[data.timestamps[i]])),
                })).SerializeToString())


def _examples(tmp_path, name: str, span: int, train: rows.Rows, test: rows.Rows) -> standard_artifacts.Examples:
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / name)
    examples.split_names = '["train", "eval"]'
    examples.set_int_custom_property(rows.SPAN, span)
    _write_split(examples.uri, rows.TRAIN, train)
    _write_split(examples.uri, rows.EVAL, test)
    return examples


def _referee_newest(data: rows.Rows) -> rows.Rows:
    keep = newest_per_pair(data.users, data.movies, data.timestamps)  # lexsort over bytes objects
    return rows.Rows(data.users[keep], data.movies[keep], data.ratings[keep], data.timestamps[keep])


def _referee_eval_set(train: rows.Rows, test: rows.Rows) -> dict:
    """EvalSet.from_rows as it was: np.unique and searchsorted over the bytes."""
    all_users = np.unique(np.concatenate([train.users, test.users]))
    movies = np.unique(np.concatenate([train.movies, test.movies]))
    matrix = ranking.interactions(np.searchsorted(all_users, train.users), np.searchsorted(movies, train.movies),
                                  len(all_users), len(movies))
    ratings = sp.csr_matrix((test.ratings, (np.searchsorted(all_users, test.users), np.searchsorted(movies, test.movies))),
                            shape=(len(all_users), len(movies)))
    return {"user_ids": np.unique(test.users), "movie_ids": movies, "all_user_ids": all_users,
            "train": matrix, "eval_ratings": ratings}


def _same_rows(got: rows.Rows, want: rows.Rows) -> None:
    for field in ("users", "movies", "ratings", "timestamps"):
        np.testing.assert_array_equal(getattr(got, field), getattr(want, field), err_msg=field)
        assert getattr(got, field).dtype == getattr(want, field).dtype, field


def test_sorted_codes_are_numpy_unique_with_inverse():
    values = _generated(0).users
    uniques, codes = ids.sorted_codes(values)
    want_uniques, want_codes = np.unique(values, return_inverse=True)
    assert uniques.tolist() == want_uniques.tolist() and uniques.dtype == want_uniques.dtype
    np.testing.assert_array_equal(codes, want_codes)
    text = np.array(["b", "10", "9", "é", "b"])  # a numpy str array keeps its dtype
    uniques, codes = ids.sorted_codes(text)
    assert uniques.dtype == np.unique(text).dtype and uniques.tolist() == ["10", "9", "b", "é"]
    np.testing.assert_array_equal(codes, [2, 0, 1, 3, 2])


def test_training_and_eval_rows_equal_the_object_route(tmp_path):
    """Two spans in the window, a pair re-rated across them: the training rows, the EvalSet and the
    bias-only fit equal the referee's, bit for bit and in the same order."""
    old, new = _generated(1), _generated(2)
    # An eval user and a movie that training never saw.
    test = rows.Rows.concatenate([_generated(3, n=800), rows.Rows(np.array([b"0 new"], object), np.array(["neu ö".encode()], object),
                                                                  np.float32([4]), np.int64([50]))])
    window = [_examples(tmp_path, "span0", 0, old, _generated(4, n=50)), _examples(tmp_path, "span1", 1, new, test)]
    want_train = _referee_newest(rows.Rows.concatenate([old, new]))
    assert len(want_train) < len(old) + len(new)  # the rows do hold re-rated pairs

    got_train = rows.training_rows(window)
    _same_rows(got_train, want_train)
    this_run, _ = rows.this_run_and_earlier(window)
    got_test = rows.read_split(this_run, rows.EVAL)
    _same_rows(got_test, test)

    bounds = [0, 20, 50, 150]
    got = rows.read_eval_set(this_run, bounds, window)
    want = _referee_eval_set(want_train, test)
    for field in ("user_ids", "movie_ids", "all_user_ids"):
        assert getattr(got, field).tolist() == want[field].tolist(), field
    for field in ("train", "eval_ratings"):
        diff = getattr(got, field) != want[field]
        assert diff.nnz == 0, field
        assert getattr(got, field).dtype == want[field].dtype, field
    counts = np.diff(want["train"].indptr)
    names = np.array([f"{ranking.features.USER_ACTIVITY}={label}" for label in ranking.features.bucket_labels(bounds)])
    np.testing.assert_array_equal(got.activity_labels, names[np.searchsorted(bounds, counts, side="left")])

    fitted = baselines.fit_bias_only(got_train.users, got_train.movies, got_train.ratings)
    user_ids, u = np.unique(want_train.users, return_inverse=True)
    movie_ids, m = np.unique(want_train.movies, return_inverse=True)
    assert fitted.user_ids.tolist() == user_ids.tolist() and fitted.movie_ids.tolist() == movie_ids.tolist()
    residual = want_train.ratings.astype(np.float64) - want_train.ratings.astype(np.float64).mean()
    user_bias, movie_bias = np.zeros(len(user_ids)), np.zeros(len(movie_ids))
    for _ in range(baselines.SWEEPS):
        movie_bias = np.bincount(m, residual - user_bias[u], len(movie_ids)) / (baselines.REG_MOVIE + np.bincount(m))
        user_bias = np.bincount(u, residual - movie_bias[m], len(user_ids)) / (baselines.REG_USER + np.bincount(u))
    np.testing.assert_array_equal(fitted.user_bias, user_bias)
    np.testing.assert_array_equal(fitted.movie_bias, movie_bias)
    np.testing.assert_array_equal(fitted.predict(test.users, test.movies),
                                  baselines.fit_bias_only(want_train.users, want_train.movies,
                                                          want_train.ratings).predict(test.users, test.movies))
