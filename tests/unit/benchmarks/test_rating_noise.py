"""benchmarks/rating_noise.py: the paired standard error of an RMSE difference, against a planted truth.

Two models whose errors share the rows' noise (as two fits of the same rows do) are scored on many
eval sets drawn from the same world; the spread of their RMSE difference over those draws is the
truth the paired standard error, computed from one draw, must match. The unpaired standard error of
one RMSE (what a gate comparing two independent samples would allow) is far larger on such models,
so a formula that ignored the pairing fails here."""
import numpy as np

from benchmarks import rating_noise


def _squared_errors(rng, n):
    shared = rng.normal(0.0, 0.9, n)  # what no model predicts: the ratings' own noise
    return (shared + rng.normal(0.0, 0.05, n)) ** 2, (shared + 0.01 + rng.normal(0.0, 0.05, n)) ** 2


def test_paired_standard_error_is_the_spread_of_the_rmse_difference_over_eval_sets():
    rng = np.random.default_rng(0)
    n = 4000
    differences = [rating_noise.paired(*_squared_errors(rng, n))[0] for _ in range(1500)]
    a, b = _squared_errors(np.random.default_rng(1), n)
    difference, standard_error = rating_noise.paired(a, b)
    truth = np.std(differences, ddof=1)
    assert abs(standard_error / truth - 1) < 0.1
    assert abs(difference - np.mean(differences)) < 4 * truth
    # The unpaired standard error of one RMSE on the same rows is an order of magnitude above it.
    assert a.std(ddof=1) / np.sqrt(n) / (2 * np.sqrt(a.mean())) > 5 * truth
