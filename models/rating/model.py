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
import math
from typing import Optional, Tuple

import numpy as np
import tensorflow as tf

from models.features import MOVIE_XF, USER_XF
from ratings import features
from models.hyperparameters import Hyperparameters
from models.layers.core import Blend, ClipRating, GlobalBias, IdEmbedding, PairTable, SideVectors
from models.layers.side_features import SideTables

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


def training_steps(ratings: int, hparams: Hyperparameters) -> int:
    """The batches of a fit of `ratings` rows over all epochs (an epoch's last batch may be short)."""
    return hparams.epochs * math.ceil(ratings / hparams.batch_size)


def learning_rate(hparams: Hyperparameters, training_steps: int):
    """Adam's learning rate: `hparams.learning_rate`, or with `learning_rate_decay: cosine` a cosine
    decay from it to 0 over the fit's `training_steps`. A model built to be restored (training_steps
    0: models/servable.py) is never fitted but gets a schedule too: a scheduled optimizer has no
    rate variable, so the fitted model's checkpoint and the rebuilt model match object for object."""
    if hparams.learning_rate_decay == "cosine":
        return tf.keras.optimizers.schedules.CosineDecay(hparams.learning_rate, max(training_steps, 1))
    return hparams.learning_rate


def _compile(model: tf.keras.Model, learning_rate) -> tf.keras.Model:
    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate),
        loss=tf.keras.losses.MeanSquaredError(),
        metrics=[tf.keras.metrics.RootMeanSquaredError(name="rmse"),
                 tf.keras.metrics.MeanAbsoluteError(name="mae")])
    return model


def build_model(num_users: int, num_movies: int, global_mean: float, hparams: Hyperparameters,
                rating_range: Tuple[float, float] = (0.5, 5.0), user_side: Optional[SideTables] = None,
                movie_side: Optional[SideTables] = None, training_steps: int = 0) -> tf.keras.Model:
    """Builds and compiles the rating model over transformed (vocabulary index) inputs, its
    optimizer's rate by `learning_rate` over `training_steps` (the fit's batches, all epochs; 0 for
    a model that is restored, not fitted).

    `hparams.model` picks the interaction: "mf" (and "mf_autorec", whose AutoRec part is
    trained afterwards, see `with_autorec`) uses the dot product; "neumf" adds an MLP over the
    concatenated user and movie vectors (NeuMF-style), for interactions a dot product misses;
    `hparams.side_features` adds side-feature vectors (`user_side`, `movie_side` tables) to the
    ID vectors, whatever the interaction.
    """
    user_index = tf.keras.Input(shape=(1,), dtype=tf.int64, name=USER_XF)
    movie_index = tf.keras.Input(shape=(1,), dtype=tf.int64, name=MOVIE_XF)
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
    model = _compile(tf.keras.Model(inputs=[user_index, movie_index], outputs=rating),
                     learning_rate(hparams, training_steps))
    if training_steps:
        # A model to be fitted gets Adam's slots now. Left to the fit, its first step creates them
        # inside the traced train step, and a tf.function whose first call creates variables is
        # traced twice (~0.3-0.5 CPU-s a fit, the same weights either way). A model built to be
        # restored keeps an unbuilt optimizer, so its checkpoint read and its export carry no slots.
        model.optimizer.build(model.trainable_variables)
    return model


def with_autorec(model: tf.keras.Model, table: np.ndarray, weight: float) -> tf.keras.Model:
    """The trained MF model blended with an AutoRec (movie x user) table, as one Keras model."""
    clip = model.get_layer(CLIP)
    autorec, known = PairTable(table, name=AUTOREC_TABLE)(model.inputs)
    rating = Blend(weight, clip.low, clip.high, name=BLEND)([model.output, autorec, known])
    return _compile(tf.keras.Model(inputs=model.inputs, outputs=rating), 0.0)


def layer_or_none(model: tf.keras.Model, name: str):
    """The model's layer called `name`, or None where the variant has none."""
    return next((layer for layer in model.layers if layer.name == name), None)
