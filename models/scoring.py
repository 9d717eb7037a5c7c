"""Scoring the whole catalogue (TensorFlow Recommenders' retrieval role): every movie's score
for a batch of users, top-K with exclusions, and cosine nearest neighbours.

All of it is a matrix product over the catalogue followed by `tf.math.top_k`, in stock TF ops, so
the exported model serves it in the standard TF Serving image, at 100k+ movies within a few ms.
"""
from typing import Optional

import tensorflow as tf

from models import model as model_lib


def _vectors(model: tf.keras.Model, embedding: str, side: str) -> tf.Tensor:
    vectors = model.get_layer(embedding).embeddings
    side_layer = model_lib.layer_or_none(model, side)
    return vectors if side_layer is None else vectors + side_layer.all_vectors()


def movie_vectors(model: tf.keras.Model) -> tf.Tensor:
    """[num_movies, dim]: the learned movie vectors (ID embedding + side features), by index."""
    return _vectors(model, model_lib.MOVIE_EMBEDDING, model_lib.MOVIE_SIDE)


def user_vectors(model: tf.keras.Model) -> tf.Tensor:
    """[num_users, dim]: the learned user vectors (ID embedding + side features), by index."""
    return _vectors(model, model_lib.USER_EMBEDDING, model_lib.USER_SIDE)


def _user_vectors_of(model: tf.keras.Model, user_indices: tf.Tensor) -> tf.Tensor:
    vectors = model.get_layer(model_lib.USER_EMBEDDING)(user_indices)
    side_layer = model_lib.layer_or_none(model, model_lib.USER_SIDE)
    return vectors if side_layer is None else vectors + side_layer(user_indices)


def score_all_movies(model: tf.keras.Model, user_indices: tf.Tensor,
                     all_movie_vectors: Optional[tf.Tensor] = None) -> tf.Tensor:
    """[batch, num_movies]: the model's rating of every known movie for each user index.

    Dot-product models: the forward pass's arithmetic as one matrix product over the catalogue.
    With an MLP, the model runs on every (user, movie) pair. Unknown users get the bias ranking.
    `all_movie_vectors`: `movie_vectors(model)` computed beforehand; the export keeps them, as
    with side features they take a pass over the whole catalogue (~20 ms a call at 100k movies).
    """
    if all_movie_vectors is None:
        all_movie_vectors = movie_vectors(model)
    num_movies = all_movie_vectors.shape[0]
    if model_lib.layer_or_none(model, model_lib.MLP_OUTPUT) is not None:
        batch = tf.shape(user_indices, tf.int64)[0]
        users = tf.repeat(user_indices, num_movies)
        movies = tf.tile(tf.range(num_movies, dtype=tf.int64), [batch])
        return tf.reshape(model([users[:, tf.newaxis], movies[:, tf.newaxis]]), [batch, num_movies])
    user_bias = model.get_layer(model_lib.USER_BIAS)(user_indices)
    movie_bias = tf.transpose(model.get_layer(model_lib.MOVIE_BIAS).embeddings)
    global_bias = model.get_layer(model_lib.GLOBAL_MEAN).bias
    scores = model.get_layer(model_lib.CLIP)(tf.matmul(_user_vectors_of(model, user_indices),
                                             all_movie_vectors, transpose_b=True)
                                   + user_bias + movie_bias + global_bias)
    table = model_lib.layer_or_none(model, model_lib.AUTOREC_TABLE)
    if table is None:
        return scores
    num_users = table.table.shape[1]
    known = user_indices < num_users
    autorec = tf.transpose(tf.gather(table.table, tf.where(known, user_indices, 0), axis=1))
    known_cells = tf.broadcast_to(known[:, tf.newaxis], tf.shape(scores))
    return model.get_layer(model_lib.BLEND)([scores, autorec, known_cells])


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
