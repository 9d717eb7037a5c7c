"""models/rating/baselines.py: the bias-only baseline against its peer, scikit-surprise's BaselineOnly
(ALS, its defaults), fitted on exactly the same rows: the same predictions, unknown users and
movies included, and the same RMSE."""
import numpy as np
import pandas as pd
import pytest
import surprise

from models.rating import baselines


def _ratings(seed=0, users=60, movies=90, n=2500):
    """Ratings 1-5 from user and movie effects plus noise, skewed popularity; one per pair."""
    rng = np.random.default_rng(seed)
    u = rng.integers(0, users, n * 2)
    m = np.minimum(rng.zipf(1.3, n * 2) - 1, movies - 1)
    pairs = np.unique(np.stack([u, m], 1), axis=0)[:n]
    effects = rng.normal(0, 0.6, users)[pairs[:, 0]] + rng.normal(0, 0.8, movies)[pairs[:, 1]]
    ratings = np.clip(np.round(3.6 + effects + rng.normal(0, 0.9, len(pairs))), 1, 5)
    return [f"u{a}" for a in pairs[:, 0]], [f"m{b}" for b in pairs[:, 1]], ratings


def test_bias_only_predicts_what_surprise_baseline_only_predicts():
    users, movies, ratings = _ratings()
    cut = int(len(ratings) * 0.8)
    fitted = baselines.fit_bias_only(np.array(users[:cut]), np.array(movies[:cut]), ratings[:cut])
    trainset = surprise.Dataset.load_from_df(
        pd.DataFrame({"u": users[:cut], "i": movies[:cut], "r": ratings[:cut]}),
        surprise.Reader(rating_scale=(ratings[:cut].min(), ratings[:cut].max()))).build_full_trainset()
    peer = surprise.BaselineOnly(bsl_options={"method": "als"}, verbose=False)
    peer.fit(trainset)
    # Held-out rows, plus a user and a movie the training rows never saw.
    test_users = np.array(users[cut:] + ["new-user", users[0], "new-user"])
    test_movies = np.array(movies[cut:] + [movies[0], "new-movie", "new-movie"])
    expected = np.array([peer.predict(u, m).est for u, m in zip(test_users, test_movies)])
    assert len(set(test_users) - set(users[:cut])) >= 1
    np.testing.assert_allclose(fitted.predict(test_users, test_movies), expected, rtol=0, atol=1e-9)
    truth = np.concatenate([ratings[cut:], [3.0, 3.0, 3.0]])
    assert baselines.rmse(fitted.predict(test_users, test_movies), truth) == pytest.approx(
        surprise.accuracy.rmse([peer.predict(u, m, r) for u, m, r in zip(test_users, test_movies, truth)],
                               verbose=False), abs=1e-9)


def test_biases_are_the_ridge_solution():
    """Enough sweeps reach the closed-form minimiser of the penalised squared error."""
    users, movies, ratings = _ratings(seed=1, n=800)
    fitted = baselines.fit_bias_only(np.array(users), np.array(movies), ratings, sweeps=500)
    user_ids, u = np.unique(users, return_inverse=True)
    movie_ids, m = np.unique(movies, return_inverse=True)
    design = np.zeros((len(ratings), len(user_ids) + len(movie_ids)))
    design[np.arange(len(ratings)), u] = 1
    design[np.arange(len(ratings)), len(user_ids) + m] = 1
    penalty = np.diag([baselines.REG_USER] * len(user_ids) + [baselines.REG_MOVIE] * len(movie_ids))
    solution = np.linalg.solve(design.T @ design + penalty, design.T @ (ratings - ratings.mean()))
    np.testing.assert_allclose(np.concatenate([fitted.user_bias, fitted.movie_bias]), solution, atol=1e-8)
