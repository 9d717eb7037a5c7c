"""The retrieval head: how `recommend` ranks the catalogue when `retrieval: history`.

A model fitted to ratings ranks by predicted rating, so its top-10 favours niche films with a few
high ratings (issue 15: NDCG@10 0.16 on MovieLens-100K, below recommending the most-rated films).
What predicts the films a user watches next is what they watched before, so this head scores
movie j for user u as

    score(u, j) = sum over movies i that u rated in training of  history[i] . candidate[j]

that is, an item-item model B = history @ candidate.T applied to the user's history. B is EASE's
(Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019): the closed-form ridge
regression of each movie's who-watched column X[:, j] on all the other movies' columns,

    B = argmin ||X - X B||^2 + ||Lambda^1/2 B||^2  with diag(B) = 0,
    solution  B = I - P diagMat(1 / diag(P)),  P = (X'X + Lambda)^-1,

with a per-movie penalty Lambda_j = l2 + popularity_l2 * count_j: EDLAE's dropout emphasis
(Steck, "Autoencoders that don't overfit towards the Identity", NeurIPS 2020), which holds back
the most-watched movies' weights a little more.

Dense EASE inverts a movies x movies matrix, so it stops at ~10k movies. This head solves the same
problem on X's best rank-`dim` approximation instead: with Y = X Lambda^-1/2 = U S W' (the top `dim`
singular triplets of the sparse matrix: ARPACK, or LAPACK's dense SVD when `dim` is most of the
smaller side, see _top_singular), P = Lambda^-1/2 (I - W D W') Lambda^-1/2 with
D = S^2 / (S^2 + 1), and B's factors are, per movie,

    history[i]   = Lambda_i^-1/2 W[i] D                  ([num_movies, dim])
    candidate[j] = Lambda_j^1/2 W[j] / (1 - (W D W')_jj)

so fitting costs one truncated SVD of the sparse ratings matrix and memory linear in the catalogue
(116k movies: seconds, two [116k, dim + 1] tables). With every singular vector kept it is exactly
EASE. On MovieLens-100K's random split, settings chosen on validation carved from training, it
ranks at least as well as dense EASE (benchmarks/README.md, Ranking).

Serving stays one matrix product + top_k over the catalogue: the user's vector is the sum of the
history rows of the movies the catalogue already records as rated by them ([B, dim + 1]), times
the candidate table ([movies, dim + 1]). The last column is popularity (count / largest count):
users with no history (unknown or new IDs) have 0 ... 0, 1 there, so they get the most-rated
movies, in order; users with a history have `popularity_weight` there, which adds that multiple of
popularity to their EASE scores, chosen on validation: 0 on MovieLens, where who-rates-what
carries personal signal; a large weight where it carries little (data whose raters pick movies by
popularity alone), which brings the lists back to most-popular.

Recency (`recency_weight`, off by default): what users watch next is also what everybody is
watching now. With a weight, the tables gain one more column, recent popularity: the number of
users who rated the movie within `recency_days` of the newest rating the head is fitted on, over
the largest such number; users with a history add `recency_weight` times it to their scores (users
with none keep the all-time most-rated list). On MovieLens-100K's temporal split the validation
carve (the newest 10% of training, fitted on what is older) prefers 30 days at weight 10 to none
(NDCG@10 0.318 vs 0.293, benchmarks/README.md, Ranking): new releases are rated by many users at
once, which no item-item model fitted on older ratings can know.

Popularity discount (`popularity_discount`, beta; 0 by default): movie j's EASE scores divided by
(count_j + 1)^beta, as RP3beta (Paudel et al., "Updatable, Accurate, Diverse, and Scalable
Recommendations for Interactive Applications", TiiS 2016) divides its item-item walk by the
target's popularity. A rank-`dim` EASE over-scores the most-watched movies: their columns dominate
the top singular vectors, so every history points at them. Folded into the candidate table (not
its popularity column, which ranks users with no history), so `recommend` costs the same. On the
catalogue run's validation carve (1M synthetic ratings, 118k movies, rank 64) beta 0.2 lifts
NDCG@10 from 0.1337 to 0.1386, above implicit ALS's best 0.1350; on MovieLens-100K, whose raters
are not drawn that way, validation keeps 0 (benchmarks/README.md, Recommendation at catalogue scale).

The tables are a closed-form function of the training ratings, recomputed every run: nothing to
warm-start (warm_start.py carries the trained rating tables only).
"""
import dataclasses

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg
import tensorflow as tf

from models.metrics import ranking


DAY_SECONDS = 86400


@dataclasses.dataclass(frozen=True)
class Tables:
    history: np.ndarray     # [num_movies, dim + extra] float32; the extra columns 0
    candidates: np.ndarray  # [num_movies, dim + extra] float32; extra: popularity, recent popularity, in [0, 1]
    popularity_weight: float = 0.0  # users with a history: score += this x popularity
    recency_weight: float = 0.0     # users with a history: score += this x recent popularity (a column iff != 0)

    @property
    def weights(self) -> np.ndarray:
        """[extra] the extra columns' values in a query of a user with a history."""
        return np.array([self.popularity_weight] + ([self.recency_weight] if self.recency_weight else []),
                        np.float32)


def recent_popularity(users: np.ndarray, movies: np.ndarray, timestamps: np.ndarray, num_movies: int,
                      days: float) -> np.ndarray:
    """[num_movies] in [0, 1]: how many users rated each movie within `days` days of the newest
    timestamp (a pair rated twice counts once), over the largest such count."""
    users, movies, timestamps = (np.asarray(a, np.int64) for a in (users, movies, timestamps))
    recent = timestamps >= timestamps.max(initial=0) - days * DAY_SECONDS
    pairs = np.unique(users[recent] * num_movies + movies[recent])
    counts = np.bincount(pairs % num_movies, minlength=num_movies).astype(np.float64)
    return counts / max(counts.max(initial=0.0), 1.0)


# Largest users x movies matrix (float64 entries, 256 MB) that _top_singular decomposes densely.
DENSE_SVD_ENTRIES = 2 ** 25


def _top_singular(matrix: sp.csr_matrix, rank: int):
    """(singular values, right singular vectors as columns) of the `rank` largest triplets.

    ARPACK (svds) pays when `rank` is a small share of min(shape). When its default Krylov basis
    (2 * rank + 1 vectors) already spans min(shape) it does a full decomposition's work with
    restarts on top, and LAPACK's dense SVD of a small matrix gives the same triplets for less
    CPU (MovieLens-100K, rank 512 of 943 users: 0.2-0.8x in A/Bs on a loaded machine,
    benchmarks/README.md, "Where a whole run's time goes"); ARPACK also needs
    rank < min(shape) - 1. The Trainer and ServableExport each fit the head once a run."""
    small = matrix.shape[0] * matrix.shape[1] <= DENSE_SVD_ENTRIES
    if rank >= min(matrix.shape) - 1 or (small and 2 * rank + 1 >= min(matrix.shape)):
        _, singular, right = np.linalg.svd(matrix.toarray(), full_matrices=False)
    else:
        _, singular, right = scipy.sparse.linalg.svds(matrix, k=rank, random_state=0)
    order = np.argsort(-singular)[:rank]
    return singular[order], right[order].T


def fit(users: np.ndarray, movies: np.ndarray, num_movies: int, l2: float, dim: int,
        popularity_l2: float = 0.0, popularity_weight: float = 0.0,
        recent: np.ndarray = None, recency_weight: float = 0.0, popularity_discount: float = 0.0) -> Tables:
    """The head's tables from the training (user index, movie index) pairs (duplicates count once);
    `recent`: recent_popularity of the same ratings, needed when `recency_weight` is not 0;
    `popularity_discount`: each movie's EASE scores divided by (its rating count + 1) to this power
    (the module docstring)."""
    if recency_weight and recent is None:
        raise ValueError("recency_weight needs the movies' recent popularity (recent_popularity)")
    # The binary who-watched matrix (a pair rated twice counts once), in float64 for the SVD.
    x = ranking.interactions(users, movies, int(users.max(initial=-1)) + 1, num_movies).astype(np.float64)
    counts = np.asarray(x.sum(axis=0)).ravel()
    penalty = l2 + popularity_l2 * counts
    singular, right = _top_singular(x @ sp.diags(penalty ** -0.5), min(dim, num_movies))
    shrink = singular ** 2 / (singular ** 2 + 1.0)
    diagonal = 1.0 - (right ** 2 * shrink).sum(axis=1)  # (I - W D W')_jj > 0: D < 1, W orthonormal
    rank = len(singular)
    extra = 2 if recency_weight else 1
    history = np.zeros((num_movies, dim + extra), np.float32)
    candidates = np.zeros((num_movies, dim + extra), np.float32)
    history[:, :rank] = right * shrink * penalty[:, np.newaxis] ** -0.5
    candidates[:, :rank] = right * (penalty ** 0.5 / diagonal * (counts + 1.0) ** -popularity_discount)[:, np.newaxis]
    candidates[:, dim] = counts / max(counts.max(initial=0.0), 1.0)
    if recency_weight:
        candidates[:, dim + 1] = recent
    return Tables(history=history, candidates=candidates, popularity_weight=popularity_weight,
                  recency_weight=recency_weight)


def query_vectors(history: tf.Tensor, seen: tf.RaggedTensor, weights) -> tf.Tensor:
    """[B, dim + extra]: each user's summed history rows, and in the extra columns 1, 0 if they have
    none (popularity alone), else `weights` (Tables.weights; a scalar: the popularity weight).

    `seen`: [B, None] movie indices each user rated in training (the catalogue's ragged rows).
    """
    weights = tf.reshape(tf.cast(weights, history.dtype), [-1])
    extra = weights.shape[0]
    summed = tf.reduce_sum(tf.gather(history, seen), axis=1)
    empty = tf.cast(seen.row_lengths() == 0, history.dtype)[:, tf.newaxis]
    cold = tf.one_hot(0, extra, dtype=history.dtype)
    return tf.concat([summed[:, :-extra], empty * cold + (1.0 - empty) * weights], axis=1)


def catalogue_scores(history: tf.Tensor, candidates: tf.Tensor, weights,
                     seen: tf.RaggedTensor) -> tf.Tensor:
    """[B, num_movies]: the head's score of every movie, one matrix product over the catalogue."""
    return tf.matmul(query_vectors(history, seen, weights), candidates, transpose_b=True)
