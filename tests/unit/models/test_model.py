"""The rating model: output shape, learning, and the fallback for unknown IDs."""
import numpy as np
import pytest
import tensorflow as tf

from models.hyperparameters import Hyperparameters
from models.rating import autorec
from models.rating.scoring import movie_vectors, score_all_movies, user_vectors
from models.rating.model import GLOBAL_MEAN, build_model, training_steps, with_autorec
from models.features import MOVIE_XF, USER_XF
from models.layers.side_features import SideTables

# Fits take 12 steps an epoch (3,000 ratings in batches of 256, at a learning rate to match), not 47:
# a fit's cost here is mostly Keras' steps and traces, and what the tests check (the loss falls well
# below the mean's, the forward pass and the catalogue scores agree) does not need more steps: RMSE
# after 10 epochs, as a share of the RMSE before, mf 0.020x and neumf with side features 0.054x in
# batches of 64 at 0.01, 0.019x and 0.030x with these (the tests ask for 0.85x).
BATCH, LEARNING_RATE = 256, 0.03


def rmse(model, inputs, ratings) -> float:
    """The RMSE of the model's forward pass, in numpy: what Keras' evaluate reports, without tracing
    an evaluation function for each model (~0.3 CPU-s each, as much as the fit's steps)."""
    return float(np.sqrt(np.mean((model(inputs).numpy().reshape(ratings.shape) - ratings) ** 2)))


def synthetic_ratings(num_users=40, num_movies=30, count=3000, seed=0):
    """Ratings from hidden 3-d tastes, so an embedding model has something real to learn."""
    rng = np.random.default_rng(seed)
    tastes, traits = rng.normal(size=(num_users, 3)), rng.normal(size=(num_movies, 3))
    users, movies = rng.integers(0, num_users, count), rng.integers(0, num_movies, count)
    ratings = np.clip(3.5 + (tastes[users] * traits[movies]).sum(axis=1), 1, 5).astype("float32")
    return {USER_XF: users[:, None], MOVIE_XF: movies[:, None]}, ratings


@pytest.fixture(scope="module")
def fitted():
    """fitted(variant, side) -> (model, hyperparameters, RMSE before the fit, RMSE after): each
    variant fitted once on synthetic_ratings for every test that reads it (a Keras fit costs ~1-2.5
    CPU-s of tracing whatever its epochs)."""
    models = {}

    def fit(variant, side):
        if (variant, side) not in models:
            inputs, ratings = synthetic_ratings()
            hparams = Hyperparameters(model=variant, embedding_dim=8, learning_rate=LEARNING_RATE, l2=0.001,
                                      mlp_layers=(16, 8), side_features=side, side_l2=0.001, epochs=10,
                                      batch_size=BATCH)
            model = build_model(40, 30, float(ratings.mean()), hparams, rating_range=(1.0, 5.0),
                                user_side=side_tables(40, seed=1), movie_side=side_tables(30, seed=2),
                                training_steps=training_steps(len(ratings), hparams))
            assert model(inputs).shape == (len(ratings),)
            before = rmse(model, inputs, ratings)
            model.fit(inputs, ratings, batch_size=hparams.batch_size, epochs=hparams.epochs, verbose=0)
            models[variant, side] = model, hparams, before, rmse(model, inputs, ratings)
        return models[variant, side]
    return fit


def test_shapes_and_a_short_fit_lowers_the_loss(fitted):
    _, ratings = synthetic_ratings()
    _, _, before, after = fitted("mf", False)
    assert after < 0.8 * before
    assert after < float(np.std(ratings))  # better than always predicting the mean


def test_unknown_ids_fall_back_to_mean_and_known_biases(fitted):
    model = fitted("mf", False)[0]
    global_mean = float(model.get_layer(GLOBAL_MEAN).bias.numpy())
    movie_bias = model.get_layer("movie_bias").embeddings.numpy()[:, 0]
    user_bias = model.get_layer("user_bias").embeddings.numpy()[:, 0]
    oov_user, oov_movie = 40, 30  # index == vocabulary size: the OOV bucket
    predict = lambda u, m: float(model({USER_XF: np.array([[u]]), MOVIE_XF: np.array([[m]])})[0])
    assert predict(oov_user, 5) == pytest.approx(global_mean + movie_bias[5], abs=1e-5)
    assert predict(7, oov_movie) == pytest.approx(global_mean + user_bias[7], abs=1e-5)
    assert predict(oov_user, oov_movie) == pytest.approx(global_mean, abs=1e-5)
    assert predict(7, 5) != pytest.approx(global_mean + user_bias[7] + movie_bias[5], abs=1e-5)


def side_tables(num_ids, seed):
    """Two categorical fields and a 3-value multi-hot field per ID, plus the OOV row."""
    rng = np.random.default_rng(seed)
    multi_hot = rng.integers(0, 2, (num_ids + 1, 3)).astype("float32")
    multi_hot[-1] = 0
    multi_hot /= np.maximum(multi_hot.sum(axis=1, keepdims=True), 1)
    categories = np.stack([rng.integers(0, 4, num_ids + 1), rng.integers(0, 3, num_ids + 1)], axis=1)
    categories[-1] = 0
    return SideTables(categories.astype("int32"), (4, 3), multi_hot)


@pytest.mark.parametrize("variant, side", [("mf", False), ("neumf", False), ("mf", True), ("neumf", True)])
def test_each_variant_learns_and_scores_the_catalogue_like_its_forward_pass(fitted, variant, side):
    model, _, before, after = fitted(variant, side)
    assert after < 0.85 * before
    assert_catalogue_scores_match(model, num_users=40, num_movies=30)


def test_side_feature_vectors_add_to_the_ids_and_unknown_ids_stay_at_the_biases(fitted):
    model, hparams, _, _ = fitted("mf", True)
    plain = build_model(40, 30, 3.5, Hyperparameters(embedding_dim=8))
    ids_only = model.get_layer("movie_embedding").embeddings.numpy()
    assert movie_vectors(model).shape == (30, 8) and user_vectors(model).shape == (40, 8)
    assert not np.allclose(movie_vectors(model).numpy(), ids_only)
    assert len(model.trainable_weights) > len(plain.trainable_weights)
    predict = lambda u, m: float(model({USER_XF: np.array([[u]]), MOVIE_XF: np.array([[m]])})[0])
    movie_bias = model.get_layer("movie_bias").embeddings.numpy()[:, 0]
    global_mean = float(model.get_layer(GLOBAL_MEAN).bias.numpy())
    assert predict(40, 5) == pytest.approx(global_mean + movie_bias[5], abs=1e-5)
    with pytest.raises(ValueError, match="side tables"):
        build_model(40, 30, 3.5, hparams)


def assert_catalogue_scores_match(model, num_users, num_movies):
    users = np.array([0, 3, num_users])  # the last one is unknown
    scores = score_all_movies(model, tf.constant(users, tf.int64)).numpy()
    assert scores.shape == (3, num_movies)
    pairs = {USER_XF: np.repeat(users, num_movies)[:, None], MOVIE_XF: np.tile(np.arange(num_movies), 3)[:, None]}
    np.testing.assert_allclose(scores.reshape(-1), model(pairs).numpy(), rtol=1e-5, atol=1e-5)
    assert scores.min() >= 1.0 and scores.max() <= 5.0  # clipped to the training range


def test_mf_autorec_blend_fits_and_falls_back_to_mf_for_unknown_ids():
    inputs, ratings = synthetic_ratings()
    hparams = Hyperparameters(model="mf_autorec", embedding_dim=8, learning_rate=LEARNING_RATE, l2=0.001,
                              autorec_hidden=16, autorec_l2=1.0, autorec_learning_rate=0.01,
                              autorec_epochs=60, autorec_batch_size=8, autorec_ema=0.9, blend_weight=0.5,
                              epochs=10, batch_size=BATCH)
    model = build_model(40, 30, float(ratings.mean()), hparams, rating_range=(1.0, 5.0),
                        training_steps=training_steps(len(ratings), hparams))
    model.fit(inputs, ratings, batch_size=hparams.batch_size, epochs=hparams.epochs, verbose=0)
    users, movies = inputs[USER_XF][:, 0], inputs[MOVIE_XF][:, 0]
    table = autorec.fit_table(users, movies, ratings, 40, 30, hparams)
    assert table.shape == (30, 40)
    # AutoRec learned the observed ratings clearly better than predicting their mean.
    assert np.sqrt(np.mean((table[movies, users] - ratings) ** 2)) < 0.7 * np.std(ratings)
    blended = with_autorec(model, table, hparams.blend_weight)
    expected = np.clip(0.5 * table[movies, users] + 0.5 * model(inputs).numpy(), 1.0, 5.0)
    np.testing.assert_allclose(blended(inputs).numpy(), expected, rtol=1e-5, atol=1e-5)
    unknown = {USER_XF: np.array([[40]]), MOVIE_XF: np.array([[3]])}
    assert blended(unknown).numpy()[0] == pytest.approx(model(unknown).numpy()[0], abs=1e-6)
    assert_catalogue_scores_match(blended, num_users=40, num_movies=30)


def test_autorec_refuses_a_catalogue_too_big_for_its_table():
    with pytest.raises(ValueError, match="use model 'mf' or 'neumf'"):
        autorec.fit_table(np.zeros(1, int), np.zeros(1, int), np.ones(1), 100_000, 1_000,
                          Hyperparameters(model="mf_autorec"))


def test_cosine_decay_ends_the_fit_at_rate_zero_and_nearer_the_planted_ratings():
    """`learning_rate_decay: cosine` over the fit's steps (model.training_steps, checked against
    Keras' own step counter): at a step size where constant Adam's last weights are one noisy step's,
    the decayed fit ends nearer the planted ratings (before the noise) than the constant one."""
    rng = np.random.default_rng(1)
    users, movies = rng.integers(0, 40, 3000), rng.integers(0, 30, 3000)
    planted = 3.5 + rng.normal(0, 0.5, 40)[users] + rng.normal(0, 0.5, 30)[movies]
    noisy = (planted + rng.normal(0, 1.0, len(planted))).astype("float32")
    inputs = {USER_XF: users[:, None], MOVIE_XF: movies[:, None]}
    errors = {}
    for decay in ("constant", "cosine"):
        hparams = Hyperparameters(embedding_dim=4, learning_rate=0.1, epochs=4, batch_size=BATCH,
                                  learning_rate_decay=decay)
        steps = training_steps(len(noisy), hparams)
        tf.keras.utils.set_random_seed(0)
        model = build_model(40, 30, float(noisy.mean()), hparams, training_steps=steps)
        model.fit(inputs, noisy, batch_size=BATCH, epochs=hparams.epochs, verbose=0)
        assert int(model.optimizer.iterations) == steps
        rate = model.optimizer.learning_rate  # the rate of the fit's last step
        last = float(rate(steps - 1) if callable(rate) else rate)
        assert last < 0.002 * 0.1 if decay == "cosine" else last == pytest.approx(0.1)
        errors[decay] = rmse(model, inputs, planted)
    assert errors["cosine"] < 0.9 * errors["constant"], errors


def test_a_fitted_model_traces_its_train_step_once_and_a_restored_one_has_no_optimizer_slots(fitted):
    """build_model with the fit's steps builds Adam's slots before the fit: a train step that creates
    them on its first call is traced twice (tf.function's variable-creating first trace, then the
    one it runs), ~0.3-0.5 CPU-s a fit. A model built to be restored (no steps) keeps an unbuilt
    optimizer, so a checkpoint read into it (models/servable.py) and its export carry no slots."""
    model = fitted("mf", False)[0]
    assert model.train_function.experimental_get_tracing_count() == 1
    assert len(model.optimizer.variables) == 1 + 2 * len(model.trainable_variables)  # steps, Adam's m and v
    restored = build_model(40, 30, 3.5, Hyperparameters(embedding_dim=8))
    assert len(restored.optimizer.variables) == 1
