"""The retrieval head: how `recommend` ranks the catalogue when `retrieval: history`.

A model fitted to ratings ranks by predicted rating, so its top-10 favours niche films with a few
high ratings (issue 15: NDCG@10 0.16 on MovieLens-100K, below recommending the most-rated films).
What predicts the films a user watches next is what they watched before, so this head scores
movie j for user u as

    score(u, j) = sum over movies i that u rated in training of  history[i] . candidate[j]

a rank-`dim` factorisation of EASE's item-item matrix (Steck, "Embarrassingly Shallow
Autoencoders for Sparse Data", WWW 2019): B = closed-form ridge regression of each movie's
who-watched column on all the other movies' columns (zero diagonal), then history @ candidate.T
= B's best rank-`dim` approximation (truncated SVD). On a validation carve of MovieLens-100K's
training part the rank-64 truncation ranks as well as full EASE (NDCG@10 0.207 vs 0.203).

Serving stays one matrix product + top_k over the catalogue: the user's vector is the sum of the
history rows of the movies the catalogue already records as rated by them ([B, dim + 1]), times
the candidate table ([movies, dim + 1]). The last column is popularity for users with no history
(unknown or new IDs): their vector is 0 ... 0, 1, so they get the most-rated movies, in order.

The tables are a closed-form function of the training ratings, recomputed every run: nothing to
warm-start (warm_start.py carries the trained rating tables only). Fitting takes a dense
movies x movies matrix, so catalogues above MAX_MOVIES are refused: use `retrieval: rating` there.
"""
import dataclasses

import numpy as np
import scipy.sparse.linalg
import tensorflow as tf

MAX_MOVIES = 10_000


@dataclasses.dataclass(frozen=True)
class Tables:
    history: np.ndarray     # [num_movies, dim + 1] float32; last column 0
    candidates: np.ndarray  # [num_movies, dim + 1] float32; last column popularity in [0, 1]


def item_item(users: np.ndarray, movies: np.ndarray, num_movies: int, l2: float) -> np.ndarray:
    """EASE's [num_movies, num_movies] item-item weights from implicit (user, movie) pairs."""
    if num_movies > MAX_MOVIES:
        raise ValueError(f"retrieval 'history' fits a {num_movies:,} x {num_movies:,} item-item matrix, "
                         f"more than {MAX_MOVIES:,} movies: use retrieval 'rating' for this catalogue")
    watched = np.zeros((int(users.max(initial=-1)) + 1, num_movies), np.float64)
    watched[users, movies] = 1.0
    gram = watched.T @ watched
    gram[np.diag_indices(num_movies)] += l2
    precision = np.linalg.inv(gram)
    weights = -precision / np.diag(precision)
    weights[np.diag_indices(num_movies)] = 0.0
    return weights


def fit(users: np.ndarray, movies: np.ndarray, num_movies: int, l2: float, dim: int) -> Tables:
    """The head's tables from the training (user index, movie index) pairs (duplicates count once)."""
    weights = item_item(users, movies, num_movies, l2)
    rank = min(dim, num_movies)
    if rank < num_movies - 1:
        # Only the top `rank` singular triplets (ARPACK): ~8x faster than the full SVD at 1,682 movies.
        left, singular, right = scipy.sparse.linalg.svds(weights, k=rank, random_state=0)
        order = np.argsort(-singular)
        left, singular, right = left[:, order], singular[order], right[order]
    else:
        left, singular, right = np.linalg.svd(weights)
    counts = np.bincount(movies, minlength=num_movies).astype(np.float64)
    popularity = counts / max(counts.max(initial=0.0), 1.0)
    history = np.zeros((num_movies, dim + 1), np.float32)
    candidates = np.zeros((num_movies, dim + 1), np.float32)
    history[:, :rank] = left[:, :rank] * singular[:rank]
    candidates[:, :rank] = right[:rank].T
    candidates[:, dim] = popularity
    return Tables(history=history, candidates=candidates)


def user_vectors(history: tf.Tensor, seen: tf.RaggedTensor) -> tf.Tensor:
    """[B, dim + 1]: each user's summed history rows, and 1 in the last column if they have none.

    `seen`: [B, None] movie indices each user rated in training (the catalogue's ragged rows).
    """
    summed = tf.reduce_sum(tf.gather(history, seen), axis=1)
    empty = tf.cast(seen.row_lengths() == 0, history.dtype)[:, tf.newaxis]
    return tf.concat([summed[:, :-1], empty], axis=1)


def score_all_movies(history: tf.Tensor, candidates: tf.Tensor, seen: tf.RaggedTensor) -> tf.Tensor:
    """[B, num_movies]: the head's score of every movie, one matrix product over the catalogue."""
    return tf.matmul(user_vectors(history, seen), candidates, transpose_b=True)
