"""The rating models: the seed's user and movie embeddings with a dot product, and variants.

mf:          rating = global_mean + user_bias[u] + movie_bias[m] + <user_vector[u], movie_vector[m]>
neumf:       the same plus an MLP over [user_vector[u], movie_vector[m]]
With `side_features`, each ID's vector in any variant also sums embeddings of its side features
(movie genres and decade; user age group, gender, occupation), see side_features.py.
mf_autorec:  mf blended with an item-based AutoRec (see autorec.py) where both IDs are known
Every variant clips its output to the training ratings' range.

Out-of-vocabulary indices (IDs unseen in training) look up zeros, so an unknown user or movie
falls back to the global mean plus whatever biases are known, instead of an untrained random row.
"""
from typing import Optional, Tuple

import numpy as np
import tensorflow as tf

from components import features
from components.hyperparameters import Hyperparameters
from components.side_features import SideTables

USER_EMBEDDING = "user_embedding"
MOVIE_EMBEDDING = "movie_embedding"
USER_BIAS = "user_bias"
MOVIE_BIAS = "movie_bias"
GLOBAL_MEAN = "global_mean"
CLIP = features.LABEL_KEY
MLP_OUTPUT = "mlp_output"
AUTOREC_TABLE = "autorec_table"
BLEND = "blended_rating"
USER_SIDE, MOVIE_SIDE = "user_side", "movie_side"
MODELS = ("mf", "neumf", "mf_autorec")


class IdEmbedding(tf.keras.layers.Layer):
    """An embedding table over vocabulary indices; indices >= vocab_size look up zeros.

    L2 regularisation is applied to the rows looked up in each training batch (as in classic
    matrix factorisation), so frequent IDs are regularised in proportion to how often they are
    seen; evaluation and serving calls add no loss.
    """

    def __init__(self, vocab_size: int, dim: int, l2: float, initializer="random_normal", **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.dim, self.l2 = vocab_size, dim, l2
        self.initializer = tf.keras.initializers.get(initializer)

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            name="embeddings", shape=(self.vocab_size, self.dim), initializer=self.initializer)
        super().build(input_shape)

    def call(self, indices, training=None):
        indices = tf.reshape(indices, [-1])
        known = indices < self.vocab_size
        vectors = tf.gather(self.embeddings, tf.where(known, indices, tf.zeros_like(indices)))
        vectors *= tf.cast(known, vectors.dtype)[:, tf.newaxis]
        if self.l2 and training:
            self.add_loss(self.l2 * tf.reduce_mean(tf.reduce_sum(tf.square(vectors), axis=1)))
        return vectors

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "dim": self.dim,
                "l2": self.l2, "initializer": tf.keras.initializers.serialize(self.initializer)}


class SideVectors(tf.keras.layers.Layer):
    """Per-ID vectors from side features: one embedding per categorical field, summed, plus the
    multi-hot-weighted mean of value (genre) embeddings; zeros for the OOV index.

    The tables are non-trainable weights rather than constants, so large catalogues do not
    bloat the serving graph. L2 applies to the vectors looked up in a training batch.
    """

    def __init__(self, tables: SideTables, dim: int, l2: float, initializer="random_normal", **kwargs):
        super().__init__(**kwargs)
        self.tables, self.dim, self.l2 = tables, dim, l2
        self.initializer = tf.keras.initializers.get(initializer)

    def build(self, input_shape):
        offsets = np.cumsum([0, *self.tables.field_sizes[:-1]]).astype(np.int32)
        rows = self.tables.categories + offsets
        self.category_rows = self.add_weight(
            name="category_rows", shape=rows.shape, dtype=tf.int32, trainable=False,
            initializer=tf.keras.initializers.Constant(rows))
        self.multi_hot = self.add_weight(
            name="multi_hot", shape=self.tables.multi_hot.shape, trainable=False,
            initializer=tf.keras.initializers.Constant(self.tables.multi_hot))
        self.category_embeddings = self.add_weight(
            name="category_embeddings", shape=(max(sum(self.tables.field_sizes), 1), self.dim),
            initializer=self.initializer)
        self.value_embeddings = self.add_weight(
            name="value_embeddings", shape=(self.tables.multi_hot.shape[1], self.dim),
            initializer=self.initializer)
        super().build(input_shape)

    @property
    def num_ids(self) -> int:
        return self.tables.categories.shape[0] - 1

    def _vectors(self, rows: tf.Tensor) -> tf.Tensor:
        categorical = tf.reduce_sum(tf.gather(self.category_embeddings, tf.gather(self.category_rows, rows)), axis=1)
        return categorical + tf.matmul(tf.gather(self.multi_hot, rows), self.value_embeddings)

    def all_vectors(self) -> tf.Tensor:
        """[ids, dim]: the side vector of every known ID, by vocabulary index."""
        return self._vectors(tf.range(self.num_ids))

    def call(self, indices, training=None):
        indices = tf.reshape(indices, [-1])
        known = indices < self.num_ids
        vectors = self._vectors(tf.where(known, indices, self.num_ids))
        vectors *= tf.cast(known, vectors.dtype)[:, tf.newaxis]
        if self.l2 and training:
            self.add_loss(self.l2 * tf.reduce_mean(tf.reduce_sum(tf.square(vectors), axis=1)))
        return vectors


class GlobalBias(tf.keras.layers.Layer):
    """A single trainable scalar, started at the training mean rating, broadcast per example."""

    def __init__(self, initial_value: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.initial_value = initial_value

    def build(self, input_shape):
        self.bias = self.add_weight(
            name="bias", shape=(), initializer=tf.keras.initializers.Constant(self.initial_value))
        super().build(input_shape)

    def call(self, like):
        return tf.fill([tf.shape(like)[0]], self.bias)

    def get_config(self):
        return {**super().get_config(), "initial_value": self.initial_value}


class ClipRating(tf.keras.layers.Layer):
    """Clips predictions to the range of ratings seen in training (no 5.3-star predictions)."""

    def __init__(self, low: float, high: float, **kwargs):
        super().__init__(**kwargs)
        self.low, self.high = low, high

    def call(self, rating):
        return tf.clip_by_value(rating, self.low, self.high)

    def get_config(self):
        return {**super().get_config(), "low": self.low, "high": self.high}


class PairTable(tf.keras.layers.Layer):
    """A precomputed (movie x user) table of ratings, looked up per pair; (values, known)."""

    def __init__(self, table: np.ndarray, **kwargs):
        super().__init__(**kwargs)
        self._initial = table

    def build(self, input_shape):
        self.table = self.add_weight(name="table", shape=self._initial.shape, trainable=False,
                                     initializer=tf.keras.initializers.Constant(self._initial))
        super().build(input_shape)

    def call(self, indices):
        user, movie = (tf.reshape(i, [-1]) for i in indices)
        num_movies, num_users = self._initial.shape
        known = (user < num_users) & (movie < num_movies)
        cells = tf.stack([tf.where(known, movie, 0), tf.where(known, user, 0)], axis=1)
        return tf.gather_nd(self.table, cells), known


class Blend(tf.keras.layers.Layer):
    """weight * AutoRec + (1 - weight) * MF where both IDs are known, else MF; then clipped."""

    def __init__(self, weight: float, low: float, high: float, **kwargs):
        super().__init__(**kwargs)
        self.weight, self.low, self.high = weight, low, high

    def call(self, inputs):
        factorised, autorec, known = inputs
        blended = tf.where(known, self.weight * autorec + (1.0 - self.weight) * factorised, factorised)
        return tf.clip_by_value(blended, self.low, self.high)

    def get_config(self):
        return {**super().get_config(), "weight": self.weight, "low": self.low, "high": self.high}


def _compile(model: tf.keras.Model, learning_rate: float) -> tf.keras.Model:
    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate),
        loss=tf.keras.losses.MeanSquaredError(),
        metrics=[tf.keras.metrics.RootMeanSquaredError(name="rmse"),
                 tf.keras.metrics.MeanAbsoluteError(name="mae")])
    return model


def build_model(num_users: int, num_movies: int, global_mean: float, hparams: Hyperparameters,
                rating_range: Tuple[float, float] = (0.5, 5.0), user_side: Optional[SideTables] = None,
                movie_side: Optional[SideTables] = None) -> tf.keras.Model:
    """Builds and compiles the rating model over transformed (vocabulary index) inputs.

    `hparams.model` picks the interaction: "mf" (and "mf_autorec", whose AutoRec part is
    trained afterwards, see `with_autorec`) uses the dot product; "neumf" adds an MLP over the
    concatenated user and movie vectors (NeuMF-style), for interactions a dot product misses;
    `hparams.side_features` adds side-feature vectors (`user_side`, `movie_side` tables) to the
    ID vectors, whatever the interaction.
    """
    if hparams.model not in MODELS:
        raise ValueError(f"unknown model {hparams.model!r}; choose one of {', '.join(MODELS)}")
    user_index = tf.keras.Input(shape=(1,), dtype=tf.int64, name=features.transformed_name(features.USER_ID))
    movie_index = tf.keras.Input(shape=(1,), dtype=tf.int64, name=features.transformed_name(features.MOVIE_ID))
    initializer = tf.keras.initializers.RandomNormal(stddev=0.05, seed=hparams.seed)
    user_vector = IdEmbedding(num_users, hparams.embedding_dim, hparams.l2, initializer,
                              name=USER_EMBEDDING)(user_index)
    movie_vector = IdEmbedding(num_movies, hparams.embedding_dim, hparams.l2, initializer,
                               name=MOVIE_EMBEDDING)(movie_index)
    if hparams.side_features:
        if user_side is None or movie_side is None:
            raise ValueError("side_features needs the user and movie side tables")
        user_vector = tf.keras.layers.Add(name="user_vector")([user_vector, SideVectors(
            user_side, hparams.embedding_dim, hparams.side_l2, initializer, name=USER_SIDE)(user_index)])
        movie_vector = tf.keras.layers.Add(name="movie_vector")([movie_vector, SideVectors(
            movie_side, hparams.embedding_dim, hparams.side_l2, initializer, name=MOVIE_SIDE)(movie_index)])
    user_bias = IdEmbedding(num_users, 1, hparams.bias_l2, "zeros", name=USER_BIAS)(user_index)
    movie_bias = IdEmbedding(num_movies, 1, hparams.bias_l2, "zeros", name=MOVIE_BIAS)(movie_index)
    terms = [user_bias, movie_bias, tf.keras.layers.Dot(axes=1, name="interaction")([user_vector, movie_vector])]
    if hparams.model == "neumf":
        hidden = tf.keras.layers.Concatenate(name="mlp_input")([user_vector, movie_vector])
        for position, units in enumerate(hparams.mlp_layers):
            hidden = tf.keras.layers.Dense(units, activation="relu", name=f"mlp_{position}",
                                           kernel_regularizer=tf.keras.regularizers.l2(hparams.mlp_l2))(hidden)
        terms.append(tf.keras.layers.Dense(1, name=MLP_OUTPUT)(hidden))
    offset = tf.keras.layers.Add(name="offset_from_mean")(terms)
    rating = tf.keras.layers.Add(name="unclipped_rating")([
        tf.keras.layers.Reshape(())(offset), GlobalBias(global_mean, name=GLOBAL_MEAN)(offset)])
    rating = ClipRating(*rating_range, name=CLIP)(rating)
    return _compile(tf.keras.Model(inputs=[user_index, movie_index], outputs=rating), hparams.learning_rate)


def with_autorec(model: tf.keras.Model, table: np.ndarray, weight: float) -> tf.keras.Model:
    """The trained MF model blended with an AutoRec (movie x user) table, as one Keras model."""
    clip = model.get_layer(CLIP)
    autorec, known = PairTable(table, name=AUTOREC_TABLE)(model.inputs)
    rating = Blend(weight, clip.low, clip.high, name=BLEND)([model.output, autorec, known])
    return _compile(tf.keras.Model(inputs=model.inputs, outputs=rating), 0.0)


def _layer(model: tf.keras.Model, name: str):
    return next((layer for layer in model.layers if layer.name == name), None)


def _vectors(model: tf.keras.Model, embedding: str, side: str) -> tf.Tensor:
    vectors = model.get_layer(embedding).embeddings
    side_layer = _layer(model, side)
    return vectors if side_layer is None else vectors + side_layer.all_vectors()


def movie_vectors(model: tf.keras.Model) -> tf.Tensor:
    """[num_movies, dim]: the learned movie vectors (ID embedding + side features), by index."""
    return _vectors(model, MOVIE_EMBEDDING, MOVIE_SIDE)


def user_vectors(model: tf.keras.Model) -> tf.Tensor:
    """[num_users, dim]: the learned user vectors (ID embedding + side features), by index."""
    return _vectors(model, USER_EMBEDDING, USER_SIDE)


def _user_vectors_of(model: tf.keras.Model, user_indices: tf.Tensor) -> tf.Tensor:
    vectors = model.get_layer(USER_EMBEDDING)(user_indices)
    side_layer = _layer(model, USER_SIDE)
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
    if _layer(model, MLP_OUTPUT) is not None:
        batch = tf.shape(user_indices, tf.int64)[0]
        users = tf.repeat(user_indices, num_movies)
        movies = tf.tile(tf.range(num_movies, dtype=tf.int64), [batch])
        return tf.reshape(model([users[:, tf.newaxis], movies[:, tf.newaxis]]), [batch, num_movies])
    user_bias = model.get_layer(USER_BIAS)(user_indices)
    movie_bias = tf.transpose(model.get_layer(MOVIE_BIAS).embeddings)
    global_bias = model.get_layer(GLOBAL_MEAN).bias
    scores = model.get_layer(CLIP)(tf.matmul(_user_vectors_of(model, user_indices),
                                             all_movie_vectors, transpose_b=True)
                                   + user_bias + movie_bias + global_bias)
    table = _layer(model, AUTOREC_TABLE)
    if table is None:
        return scores
    num_users = table.table.shape[1]
    known = user_indices < num_users
    autorec = tf.transpose(tf.gather(table.table, tf.where(known, user_indices, 0), axis=1))
    known_cells = tf.broadcast_to(known[:, tf.newaxis], tf.shape(scores))
    return model.get_layer(BLEND)([scores, autorec, known_cells])
