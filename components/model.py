"""The seed model: user and movie embeddings whose dot product, plus biases, predicts the rating.

rating = global_mean + user_bias[u] + movie_bias[m] + <user_vector[u], movie_vector[m]>

Out-of-vocabulary indices (IDs unseen in training) look up zeros, so an unknown user or movie
falls back to the global mean plus whatever biases are known, instead of an untrained random row.
"""
import tensorflow as tf

from components import features
from components.hyperparameters import Hyperparameters

USER_EMBEDDING = "user_embedding"
MOVIE_EMBEDDING = "movie_embedding"
USER_BIAS = "user_bias"
MOVIE_BIAS = "movie_bias"
GLOBAL_MEAN = "global_mean"


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


def build_model(num_users: int, num_movies: int, global_mean: float,
                hparams: Hyperparameters) -> tf.keras.Model:
    """Builds and compiles the rating model over transformed (vocabulary index) inputs."""
    user_index = tf.keras.Input(shape=(1,), dtype=tf.int64, name=features.transformed_name(features.USER_ID))
    movie_index = tf.keras.Input(shape=(1,), dtype=tf.int64, name=features.transformed_name(features.MOVIE_ID))
    initializer = tf.keras.initializers.RandomNormal(stddev=0.05, seed=hparams.seed)
    user_vector = IdEmbedding(num_users, hparams.embedding_dim, hparams.l2, initializer,
                              name=USER_EMBEDDING)(user_index)
    movie_vector = IdEmbedding(num_movies, hparams.embedding_dim, hparams.l2, initializer,
                               name=MOVIE_EMBEDDING)(movie_index)
    user_bias = IdEmbedding(num_users, 1, hparams.l2, "zeros", name=USER_BIAS)(user_index)
    movie_bias = IdEmbedding(num_movies, 1, hparams.l2, "zeros", name=MOVIE_BIAS)(movie_index)
    interaction = tf.keras.layers.Dot(axes=1, name="interaction")([user_vector, movie_vector])
    offset = tf.keras.layers.Add(name="offset_from_mean")([user_bias, movie_bias, interaction])
    rating = tf.keras.layers.Add(name=features.LABEL_KEY)([
        tf.keras.layers.Reshape(())(offset), GlobalBias(global_mean, name=GLOBAL_MEAN)(offset)])
    model = tf.keras.Model(inputs=[user_index, movie_index], outputs=rating)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(hparams.learning_rate),
        loss=tf.keras.losses.MeanSquaredError(),
        metrics=[tf.keras.metrics.RootMeanSquaredError(name="rmse"),
                 tf.keras.metrics.MeanAbsoluteError(name="mae")])
    return model


def movie_vectors(model: tf.keras.Model) -> tf.Tensor:
    """[num_movies, dim]: the learned movie embeddings, by vocabulary index."""
    return model.get_layer(MOVIE_EMBEDDING).embeddings


def user_vectors(model: tf.keras.Model) -> tf.Tensor:
    """[num_users, dim]: the learned user embeddings, by vocabulary index."""
    return model.get_layer(USER_EMBEDDING).embeddings


def score_all_movies(model: tf.keras.Model, user_indices: tf.Tensor) -> tf.Tensor:
    """[batch, num_movies]: the model's rating of every known movie for each user index.

    The same arithmetic as the model's forward pass, as one matrix product over the catalogue
    instead of one forward pass per (user, movie) pair; unknown users get the bias ranking.
    """
    user_vector = model.get_layer(USER_EMBEDDING)(user_indices)
    user_bias = model.get_layer(USER_BIAS)(user_indices)
    movie_bias = tf.transpose(model.get_layer(MOVIE_BIAS).embeddings)
    global_bias = model.get_layer(GLOBAL_MEAN).bias
    return (tf.matmul(user_vector, movie_vectors(model), transpose_b=True)
            + user_bias + movie_bias + global_bias)
