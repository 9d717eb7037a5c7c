"""Scores to lists, in the exported model (TensorFlow Recommenders' top-K role): top-K with
exclusions and one k per row, the names of ranked indices, and cosine nearest neighbours.

Whichever head scored the catalogue (the rating model, models/rating/scoring.py, or the history head,
models/retrieval/history_head.py), the lists are cut here with `tf.math.top_k`, in stock TF ops, so the
exported model serves them in the standard TF Serving image, at 100k+ movies within a few ms.
"""
import tensorflow as tf


def top_k_excluding(scores: tf.Tensor, k: tf.Tensor, excluded_cells: tf.Tensor, num_movies: int):
    """`top_k_per_row` over each row of `scores` [B, num_movies] with the [N, 2] (row, movie index)
    cells of `excluded_cells` left out; cells whose movie index is out of vocabulary are ignored."""
    cells = tf.boolean_mask(excluded_cells, excluded_cells[:, 1] < num_movies)
    scores = tf.tensor_scatter_nd_update(
        scores, cells, tf.fill([tf.shape(cells)[0]], tf.constant(-float("inf"), scores.dtype)))
    return top_k_per_row(scores, k, num_movies)


def top_k_per_row(scores: tf.Tensor, k: tf.Tensor, candidates):
    """Top-k of each row with one k per row ([B]; at least 1, else the call fails): ranks to the
    batch's largest k (at most `candidates`) and marks the columns past each row's own k, which
    callers fill with "" / -inf. TF Serving's batching merges requests with different k into one
    batch (serving/contract.py). (values, -inf past each row's k; indices; in_k [B, K])."""
    tf.debugging.Assert(tf.shape(k)[0] == tf.shape(scores)[0], ["k needs one value per row"])
    tf.debugging.assert_positive(k, message="k must be at least 1")
    largest = tf.minimum(tf.reduce_max(tf.concat([k, [0]], 0)), candidates)
    top = tf.math.top_k(scores, largest)
    in_k = tf.range(largest)[tf.newaxis, :] < k[:, tf.newaxis]
    return tf.where(in_k, top.values, tf.constant(-float("inf"), scores.dtype)), top.indices, in_k


def ranked(names: tf.Tensor, indices: tf.Tensor, in_k: tf.Tensor) -> tf.Tensor:
    """Names (IDs, titles) of ranked indices, "" past each row's k."""
    return tf.where(in_k, tf.gather(names, indices), tf.constant(""))


def nearest(normalized: tf.Variable, query: tf.Tensor, k: tf.Tensor):
    """Top-k cosine neighbours of query indices among unit vectors, excluding self;
    (values, indices, in_k) as `top_k_per_row` gives them, and known.

    Rows for unknown queries are meaningless; callers blank them with `only_known`.
    """
    known = query < tf.cast(tf.shape(normalized)[0], tf.int64)
    safe = tf.where(known, query, tf.zeros_like(query))
    similarity = tf.matmul(tf.gather(normalized, safe), normalized, transpose_b=True)
    self_cells = tf.stack([tf.range(tf.shape(query, tf.int64)[0]), safe], axis=1)
    similarity = tf.tensor_scatter_nd_update(
        similarity, self_cells, tf.fill([tf.shape(query)[0]], tf.constant(-2.0, similarity.dtype)))
    return (*top_k_per_row(similarity, k, tf.shape(normalized)[0] - 1), known)


def only_known(known: tf.Tensor, ids: tf.Tensor, scores: tf.Tensor):
    """Neighbour IDs and scores, with "" and 0 in the rows of unknown queries."""
    known = known[:, tf.newaxis]
    return tf.where(known, ids, tf.constant("")), tf.where(known, scores, tf.zeros_like(scores))
