"""I-AutoRec (Sedhain et al., 2015): an autoencoder over each movie's vector of user ratings.

Trained on the training ratings only, its reconstructions of every (movie, user) cell become a
table the exported model looks up and blends with matrix factorisation (model.with_autorec).
The table is dense, so this variant is for catalogues of modest size (MovieLens-100K/1M);
`fit_table` refuses anything bigger than MAX_TABLE_CELLS instead of running out of memory.
"""
import numpy as np
import tensorflow as tf
from absl import logging

from models.hyperparameters import Hyperparameters

MAX_TABLE_CELLS = 50_000_000


def fit_table(users: np.ndarray, movies: np.ndarray, ratings: np.ndarray, num_users: int,
              num_movies: int, hparams: Hyperparameters) -> np.ndarray:
    """[num_movies, num_users] reconstructed ratings, from (user, movie, rating) index triples.

    Squared error on observed cells only, L2 on the weights spread over the batches of an epoch,
    Adam, and an exponential moving average of the weights (the averaged weights predict).
    """
    if num_users * num_movies > MAX_TABLE_CELLS:
        raise ValueError(f"mf_autorec needs a {num_movies:,} x {num_users:,} table, more than "
                         f"{MAX_TABLE_CELLS:,} cells: use model 'mf' or 'neumf' for this catalogue")
    observed = np.zeros((num_movies, num_users), np.float32)
    mask = np.zeros((num_movies, num_users), np.float32)
    observed[movies, users] = ratings
    mask[movies, users] = 1.0
    observed, mask = tf.constant(observed), tf.constant(mask)
    glorot = tf.keras.initializers.GlorotUniform
    params = [tf.Variable(glorot(seed=hparams.seed)((num_users, hparams.autorec_hidden))),
              tf.Variable(tf.zeros(hparams.autorec_hidden)),
              tf.Variable(glorot(seed=hparams.seed + 1)((hparams.autorec_hidden, num_users))),
              tf.Variable(tf.zeros(num_users))]
    averaged = [tf.Variable(p) for p in params]
    optimizer = tf.keras.optimizers.Adam(hparams.autorec_learning_rate)

    def reconstruct(rows, weights):
        encoder, encoder_bias, decoder, decoder_bias = weights
        return tf.matmul(tf.sigmoid(tf.matmul(rows, encoder) + encoder_bias), decoder) + decoder_bias

    # Without AutoGraph: the step has no tensor-dependent Python control flow, and converting it (with
    # the Keras optimizer's code it calls) cost ~1.7 of a 3,000-rating fit's 2.3 s; the table is the same.
    @tf.function(autograph=False)
    def step(batch):
        rows, rows_mask = tf.gather(observed, batch), tf.gather(mask, batch)
        share = tf.cast(tf.shape(batch)[0], tf.float32) / num_movies
        with tf.GradientTape() as tape:
            error = tf.reduce_sum(rows_mask * tf.square(reconstruct(rows, params) - rows))
            penalty = 0.5 * hparams.autorec_l2 * share * (tf.reduce_sum(tf.square(params[0]))
                                                          + tf.reduce_sum(tf.square(params[2])))
            loss = error + penalty
        optimizer.apply_gradients(zip(tape.gradient(loss, params), params))
        for average, param in zip(averaged, params):
            average.assign(hparams.autorec_ema * average + (1 - hparams.autorec_ema) * param)
        return error

    rng = np.random.default_rng(hparams.seed)
    for epoch in range(hparams.autorec_epochs):
        order = rng.permutation(num_movies)
        error = sum(float(step(tf.constant(order[i:i + hparams.autorec_batch_size])))
                    for i in range(0, num_movies, hparams.autorec_batch_size))
        if (epoch + 1) % 10 == 0:
            logging.info("AutoRec epoch %d/%d: train RMSE %.4f", epoch + 1, hparams.autorec_epochs,
                         np.sqrt(error / max(len(ratings), 1)))
    return reconstruct(observed, averaged).numpy()
