"""The bias-only rating baseline a trained model must beat: global mean + user bias + movie bias.

Why it is the yardstick for RMSE: it is what any rating model learns first (most of the gain
over the global mean on MovieLens), it has no settings to tune per dataset, and it is measured on
the run's own rows, so its RMSE moves with the data's size and rating scale exactly as the
candidate's does (a fixed bound like "RMSE <= 1.0" does not).

The fit is ridge-regularised least squares on the biases, solved by alternating exact updates
(each half-step is the closed-form minimiser given the other biases), as scikit-surprise's
BaselineOnly with method "als" does (surprise/prediction_algorithms/optimize_baselines.pyx,
baseline_als, after MyMediaLite's UserItemBaseline), with its defaults: 10 sweeps, movie penalty
10, user penalty 15. Predictions are clipped to the training ratings' range, as the model's are.
"""
import dataclasses

import numpy as np

from ratings import ids

REG_USER, REG_MOVIE, SWEEPS = 15.0, 10.0, 10


@dataclasses.dataclass(frozen=True)
class BiasOnly:
    mean: float
    user_ids: np.ndarray    # sorted
    user_bias: np.ndarray
    movie_ids: np.ndarray   # sorted
    movie_bias: np.ndarray
    low: float
    high: float

    def predict(self, users: np.ndarray, movies: np.ndarray) -> np.ndarray:
        """Ratings for (user, movie) ID pairs; an ID not seen in training adds no bias."""
        return np.clip(self.mean + _lookup(self.user_ids, self.user_bias, users)
                       + _lookup(self.movie_ids, self.movie_bias, movies), self.low, self.high)


def _lookup(ids: np.ndarray, values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    wanted = np.asarray(wanted)
    at = np.minimum(np.searchsorted(ids, wanted), len(ids) - 1)
    return np.where(ids[at] == wanted, values[at], 0.0)


def fit_bias_only(users: np.ndarray, movies: np.ndarray, ratings: np.ndarray, reg_user: float = REG_USER,
                  reg_movie: float = REG_MOVIE, sweeps: int = SWEEPS) -> BiasOnly:
    """Fits the biases on training rows (ID arrays and ratings, one rating per pair)."""
    ratings = np.asarray(ratings, dtype=np.float64)
    if not len(ratings):
        raise ValueError("no training ratings to fit the bias-only baseline on")
    user_ids, u = ids.sorted_codes(users)
    movie_ids, m = ids.sorted_codes(movies)
    mean = float(ratings.mean())
    residual = ratings - mean
    user_count = np.bincount(u, minlength=len(user_ids))
    movie_count = np.bincount(m, minlength=len(movie_ids))
    user_bias, movie_bias = np.zeros(len(user_ids)), np.zeros(len(movie_ids))
    for _ in range(sweeps):
        movie_bias = np.bincount(m, residual - user_bias[u], len(movie_ids)) / (reg_movie + movie_count)
        user_bias = np.bincount(u, residual - movie_bias[m], len(user_ids)) / (reg_user + user_count)
    return BiasOnly(mean, user_ids, user_bias, movie_ids, movie_bias, float(ratings.min()), float(ratings.max()))


def rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(predicted, np.float64) - np.asarray(actual, np.float64)) ** 2)))
