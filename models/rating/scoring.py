"""The rating model's scores of the whole catalogue: every movie's predicted rating for a batch
of users, and the learned user and movie vectors (ID embedding + side features) by index.

A matrix product over the catalogue in stock TF ops, so the exported model serves it in the
standard TF Serving image; models/retrieval/lists.py turns the scores into top-K lists.
"""
from typing import Optional

import tensorflow as tf

from models.rating import model as model_lib


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
