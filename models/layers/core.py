"""Keras layers of the rating models (TensorFlow Recommenders' `layers`): ID embeddings whose
out-of-vocabulary index looks up zeros, side-feature vectors, the global bias, clipping, and the
AutoRec table and blend. models/rating/model.py assembles them.
"""
import numpy as np
import tensorflow as tf
from tensorflow.python.autograph.core import config as autograph_config
from tensorflow.python.autograph.core import config_lib

from models.layers.side_features import SideTables

# AutoGraph leaves Keras' own code unconverted (its rule DoNotConvert("keras")), but TensorFlow
# 2.16's rules predate tf-keras' module name: the first fit or trace in every process converted
# tf_keras' training loop source to graph code (~20 s; a Trainer run spent most of its time there).
# Newer TensorFlow has the rule (tensorflow/python/autograph/core/config.py, CONVERSION_RULES:
# DoNotConvert("tf_keras")); added here for 2.16. Our own layers and functions are still converted.
if not any(isinstance(rule, config_lib.DoNotConvert) and rule.matches("tf_keras")
           for rule in autograph_config.CONVERSION_RULES):
    autograph_config.CONVERSION_RULES = (*autograph_config.CONVERSION_RULES, config_lib.DoNotConvert("tf_keras"))


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
