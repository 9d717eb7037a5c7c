"""The ranking peers only the benchmarks fit: dense EASE, implicit ALS, the popularity fallback for
users with no history, and the search of their settings on validation carved from training.

Kept out of models/ because nothing the pipeline runs uses them; they score lists with the same
code as the pipeline's evaluation (models/metrics/ranking.py), so their figures compare with a run's.
Pure numpy (the `implicit` peer imports its package only when fitted).
"""
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import scipy.sparse as sp

from models.metrics.ranking import K, OVERALL, RankingMetrics, Scorer, evaluate, relevant_lists, top_k


def fit_ease(train: sp.csr_matrix, l2: float) -> Scorer:
    """EASE (Steck 2019): item-item weights B = I - P / diag(P), P = (X'X + l2 I)^-1, diag(B) = 0."""
    gram = (train.T @ train).toarray().astype(np.float64)
    gram[np.diag_indices_from(gram)] += l2
    precision = np.linalg.inv(gram)
    weights = -precision / np.diag(precision)
    weights[np.diag_indices_from(weights)] = 0.0
    return lambda users: np.asarray(train[users] @ weights)


def fit_implicit_als(train: sp.csr_matrix, factors: int, regularization: float, alpha: float,
                     iterations: int = 15, seed: int = 0) -> Scorer:
    """Weighted implicit-feedback MF (Hu, Koren & Volinsky 2008) by `implicit`'s ALS; confidence
    1 + alpha on rated items."""
    from threadpoolctl import threadpool_limits
    from implicit.cpu.als import AlternatingLeastSquares
    model = AlternatingLeastSquares(factors=factors, regularization=regularization, alpha=alpha,
                                    iterations=iterations, random_state=seed)
    with threadpool_limits(1, "blas"):  # implicit parallelises itself; nested BLAS threads slow it
        model.fit(sp.csr_matrix(train, dtype=np.float32), show_progress=False)
    users_f, items_f = np.asarray(model.user_factors), np.asarray(model.item_factors)
    return lambda users: users_f[users] @ items_f.T


def with_popularity_for_cold_users(scorer: Scorer, train: sp.csr_matrix) -> Scorer:
    """A peer that ranks by popularity for users with no training items.

    EASE and ALS score every movie 0 for such users (no history to score from), which would make
    their lists an arbitrary tie order; our model falls back to movie biases there. Most-popular
    is the fair fallback (it matters on the temporal split, where most eval users are new).
    """
    counts = np.asarray(train.sum(axis=0)).ravel()
    cold = np.diff(train.indptr) == 0

    def score(users: np.ndarray) -> np.ndarray:
        scores = np.asarray(scorer(users), dtype=np.float64)
        scores[cold[users]] = counts
        return scores
    return score


def score_peer(scorer: Scorer, train: sp.csr_matrix, test: sp.csr_matrix, k: int = K,
               slices: Optional[Sequence[str]] = None) -> Dict[str, RankingMetrics]:
    """Metrics of a fitted peer's top-k lists (training items excluded) on test's users.
    slices: one label per user index of the matrices (all users), or None."""
    users, relevant = relevant_lists(test)
    counts = np.asarray(train.sum(axis=0)).ravel()
    lists = np.concatenate([top_k(scorer(chunk), k, train[chunk])
                            for chunk in np.array_split(users, max(1, len(users) // 2048 + 1))])
    labels = None if slices is None else np.asarray(slices)[users]
    return evaluate(lists, relevant, counts, labels)


def choose(fit: Callable[..., Scorer], grid: Sequence[Dict], train: sp.csr_matrix,
           validation: sp.csr_matrix, k: int = K) -> Tuple[Dict, List[Tuple[Dict, float]]]:
    """(best settings, [(settings, validation NDCG@k)]) of `fit(fit_part, **settings)` over grid.

    `train` here is the fitting part and `validation` the part carved from training for choosing
    settings (never the test split); the caller refits the chosen settings on all training data.
    """
    tried = [(settings, score_peer(fit(train, **settings), train, validation, k)[OVERALL].ndcg)
             for settings in grid]
    return max(tried, key=lambda pair: pair[1])[0], tried


def carve_validation(train: sp.csr_matrix, fraction: float = 0.1, seed: int = 0,
                     order: Optional[np.ndarray] = None) -> Tuple[sp.csr_matrix, sp.csr_matrix]:
    """(fitting part, validation part) of the training interactions: a random `fraction` of the
    pairs (numpy default_rng(seed)), or with `order` (one sort key per stored pair in CSR order,
    e.g. timestamps) the last `fraction` by that key, for a temporal protocol."""
    coo = sp.csr_matrix(train).tocoo()
    n = coo.nnz
    held = np.zeros(n, dtype=bool)
    if order is None:
        held[np.random.default_rng(seed).permutation(n)[:int(round(n * fraction))]] = True
    else:
        held[np.argsort(order, kind="mergesort")[n - int(round(n * fraction)):]] = True

    def part(mask):
        return sp.csr_matrix((coo.data[mask], (coo.row[mask], coo.col[mask])), shape=train.shape)
    return part(~held), part(held)
