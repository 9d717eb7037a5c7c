"""The rating model: output shape, learning, and the fallback for unknown IDs."""
import numpy as np
import pytest
import tensorflow as tf

from components import features
from components.hyperparameters import Hyperparameters
from components.model import GLOBAL_MEAN, build_model

USER_XF = features.transformed_name(features.USER_ID)
MOVIE_XF = features.transformed_name(features.MOVIE_ID)


def synthetic_ratings(num_users=40, num_movies=30, count=3000, seed=0):
    """Ratings from hidden 3-d tastes, so an embedding model has something real to learn."""
    rng = np.random.default_rng(seed)
    tastes, traits = rng.normal(size=(num_users, 3)), rng.normal(size=(num_movies, 3))
    users, movies = rng.integers(0, num_users, count), rng.integers(0, num_movies, count)
    ratings = np.clip(3.5 + (tastes[users] * traits[movies]).sum(axis=1), 1, 5).astype("float32")
    return {USER_XF: users[:, None], MOVIE_XF: movies[:, None]}, ratings


def test_shapes_and_a_short_fit_lowers_the_loss():
    inputs, ratings = synthetic_ratings()
    hparams = Hyperparameters(embedding_dim=8, learning_rate=0.01, l2=0.001)
    model = build_model(40, 30, float(ratings.mean()), hparams)
    assert model(inputs).shape == (len(ratings),)
    before = model.evaluate(inputs, ratings, verbose=0, return_dict=True)
    model.fit(inputs, ratings, batch_size=64, epochs=15, verbose=0)
    after = model.evaluate(inputs, ratings, verbose=0, return_dict=True)
    assert after["rmse"] < 0.8 * before["rmse"]
    assert after["rmse"] < float(np.std(ratings))  # better than always predicting the mean


def test_unknown_ids_fall_back_to_mean_and_known_biases():
    inputs, ratings = synthetic_ratings()
    model = build_model(40, 30, 3.5, Hyperparameters(embedding_dim=4, learning_rate=0.01))
    model.fit(inputs, ratings, batch_size=64, epochs=2, verbose=0)
    global_mean = float(model.get_layer(GLOBAL_MEAN).bias.numpy())
    movie_bias = model.get_layer("movie_bias").embeddings.numpy()[:, 0]
    user_bias = model.get_layer("user_bias").embeddings.numpy()[:, 0]
    oov_user, oov_movie = 40, 30  # index == vocabulary size: the OOV bucket
    predict = lambda u, m: float(model({USER_XF: np.array([[u]]), MOVIE_XF: np.array([[m]])})[0])
    assert predict(oov_user, 5) == pytest.approx(global_mean + movie_bias[5], abs=1e-5)
    assert predict(7, oov_movie) == pytest.approx(global_mean + user_bias[7], abs=1e-5)
    assert predict(oov_user, oov_movie) == pytest.approx(global_mean, abs=1e-5)
    assert predict(7, 5) != pytest.approx(global_mean + user_bias[7] + movie_bias[5], abs=1e-5)
