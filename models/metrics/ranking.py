"""Full-catalogue top-K ranking metrics, and most-popular, the peer the Baselines gate fits.

Why one module: the pipeline's evaluation, the ranking gate and the benchmarks must score lists
the same way, or their numbers cannot be compared. Pure numpy, so it runs in the Trainer, a TFX
executor, a benchmark or a test alike. The peers only the benchmarks fit (EASE, implicit ALS)
and their settings search live in benchmarks/ranking_peers.py.

Protocol (issue 15): every user with at least one relevant item is scored; each list ranks the
whole catalogue with the user's training items excluded; no sampled negatives. Items are integer
indices 0..n_items-1 into the catalogue (the movies seen in training); a list may be padded with
-1 when fewer than K items were available.

Definitions, binary relevance, K = len(list) (10 unless told), R = the user's relevant items:
- Precision@K = hits / K.
- Recall@K    = hits / |R|  (the textbook definition, as in RecBole and TFRS's factorized top-K;
                not hits / min(K, |R|)). A user with more than K relevant items cannot reach 1.
- NDCG@K      = DCG / IDCG, DCG = sum over ranks i (0-based) of rel_i / log2(i + 2), IDCG the
                DCG of an ideal list: min(K, |R|) hits at the top.
- MAP@K       = mean over users of AP@K = sum_i P@(i+1) * rel_i / min(K, |R|)  (ml_metrics' apk).
- coverage    = distinct items recommended to anyone / n_items.
- popularity rank = mean, over every recommended item, of its rank by training ratings
                (1 = the most rated; ties share their average rank). Lower = more popular = a
                list closer to "most popular"; the catalogue's mean rank is (n_items + 1) / 2.
Each of the first four is a per-user figure averaged over users, overall and per slice.
"""
import dataclasses
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import scipy.sparse as sp

from models import features
from ratings import ids

K = 10
# The figures of a RankingMetrics, in the order reports show them.
METRICS = ("ndcg", "recall", "precision", "map", "coverage", "popularity_rank")
OVERALL = "overall"


@dataclasses.dataclass(frozen=True)
class RankingMetrics:
    """Ranking figures of one set of users (the whole eval set, or one slice)."""
    users: int
    ndcg: float
    recall: float
    precision: float
    map: float
    coverage: float
    popularity_rank: float

    def as_dict(self) -> Dict[str, float]:
        return dataclasses.asdict(self)


def popularity_ranks(train_counts: np.ndarray) -> np.ndarray:
    """Rank of each item by training ratings, 1 = the most rated; tied items share their mean rank."""
    counts = np.asarray(train_counts)
    descending = np.sort(counts)[::-1]
    # Items with count c occupy ranks (#items with more ratings) + 1 .. (#items with at least c).
    above = np.searchsorted(-descending, -counts, side="left")
    at_least = np.searchsorted(-descending, -counts, side="right")
    return (above + 1 + at_least) / 2.0


def _as_lists(relevant: Sequence[Iterable[int]]) -> List[np.ndarray]:
    return [np.asarray(list(items) if not isinstance(items, np.ndarray) else items, dtype=np.int64)
            for items in relevant]


def per_user(recommended: np.ndarray, relevant: Sequence[Iterable[int]]) -> Dict[str, np.ndarray]:
    """NDCG, recall, precision and AP of each user's list: {metric: [U] array}.

    recommended: [U, K] item indices (-1 = no item); relevant: U collections of item indices,
    each non-empty (users with nothing relevant have no defined recall and are not scored).
    """
    recommended = np.asarray(recommended, dtype=np.int64)
    if recommended.ndim != 2:
        raise ValueError(f"recommended must be [users, K], got shape {recommended.shape}")
    relevant = _as_lists(relevant)
    if len(relevant) != len(recommended):
        raise ValueError(f"{len(recommended)} lists but {len(relevant)} relevant sets")
    sizes = np.array([len(np.unique(items)) for items in relevant])
    if (sizes == 0).any():
        raise ValueError(f"user row {int(np.argmin(sizes))} has no relevant items")
    k = recommended.shape[1]
    hits = np.array([np.isin(row, items) & (row >= 0) for row, items in zip(recommended, relevant)],
                    dtype=np.float64).reshape(len(recommended), k)
    discounts = 1.0 / np.log2(np.arange(k) + 2.0)
    ideal_hits = np.minimum(sizes, k)
    idcg = np.cumsum(discounts)[ideal_hits - 1]
    precision_at_rank = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    return {
        "ndcg": hits @ discounts / idcg,
        "recall": hits.sum(axis=1) / sizes,
        "precision": hits.sum(axis=1) / k,
        "map": (precision_at_rank * hits).sum(axis=1) / ideal_hits,
    }


def _summary(recommended: np.ndarray, scores: Dict[str, np.ndarray], rows: np.ndarray,
             n_items: int, ranks: np.ndarray) -> RankingMetrics:
    lists = recommended[rows]
    items = lists[lists >= 0]
    return RankingMetrics(
        users=int(rows.size),
        ndcg=float(scores["ndcg"][rows].mean()), recall=float(scores["recall"][rows].mean()),
        precision=float(scores["precision"][rows].mean()), map=float(scores["map"][rows].mean()),
        coverage=float(np.unique(items).size / n_items),
        popularity_rank=float(ranks[items].mean()) if items.size else float("nan"))


def evaluate(recommended: np.ndarray, relevant: Sequence[Iterable[int]], train_counts: np.ndarray,
             slices: Optional[Sequence[str]] = None) -> Dict[str, RankingMetrics]:
    """{"overall": metrics, "<slice label>": metrics, ...} of top-K lists against relevant items.

    train_counts: training ratings per catalogue item (its length is the catalogue size; it
    gives coverage's denominator and the popularity ranks). slices: one label per user (e.g.
    "user_activity=1-20"); slices appear in sorted label order after "overall".
    """
    recommended = np.asarray(recommended, dtype=np.int64)
    n_items = len(train_counts)
    if recommended.size and recommended.max() >= n_items:
        raise ValueError(f"recommended item index {recommended.max()} outside the catalogue of {n_items}")
    scores = per_user(recommended, relevant)
    ranks = popularity_ranks(train_counts)
    result = {OVERALL: _summary(recommended, scores, np.arange(len(recommended)), n_items, ranks)}
    if slices is not None:
        labels = np.asarray(slices)
        if len(labels) != len(recommended):
            raise ValueError(f"{len(recommended)} lists but {len(labels)} slice labels")
        for label in sorted(set(labels.tolist())):
            result[label] = _summary(recommended, scores, np.flatnonzero(labels == label), n_items, ranks)
    return result


def top_k(scores: np.ndarray, k: int = K, exclude: Optional[sp.spmatrix] = None) -> np.ndarray:
    """[U, k] indices of each row's highest scores, best first, items in `exclude` (a [U, I]
    sparse matrix, e.g. the training ratings) left out; ties go to the lower index; rows with
    fewer than k allowed items are padded with -1."""
    scores = np.array(scores, dtype=np.float64, copy=True)
    if exclude is not None:
        rows, cols = sp.csr_matrix(exclude).nonzero()
        scores[rows, cols] = -np.inf
    if k >= scores.shape[1]:
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    else:
        # Only items at least as good as the row's k-th best can be listed: a partition, then a
        # sort of those few (a full sort per row costs seconds per 2,048 users at 100k+ movies).
        kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1]
        order = np.empty((len(scores), k), np.int64)
        for row, (values, threshold) in enumerate(zip(scores, kth)):
            candidates = np.flatnonzero(values >= threshold)  # ascending: ties keep the lower index first
            order[row] = candidates[np.argsort(-values[candidates], kind="stable")[:k]]
    return np.where(np.isfinite(np.take_along_axis(scores, order, axis=1)), order, -1)


def interactions(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> sp.csr_matrix:
    """Binary [n_users, n_items] CSR matrix of (user, item) index pairs (a rating = an interaction)."""
    data = np.ones(len(users), dtype=np.float32)
    matrix = sp.csr_matrix((data, (users, items)), shape=(n_users, n_items))
    matrix.data[:] = 1.0
    return matrix


# --- Peers: each fit returns a scorer, users -> [len(users), n_items] scores (more in benchmarks/ranking_peers.py). ---

Scorer = Callable[[np.ndarray], np.ndarray]


def fit_popularity(train: sp.csr_matrix) -> Scorer:
    """Most-rated first, the same list for everyone (minus their own items)."""
    counts = np.asarray(train.sum(axis=0)).ravel()
    return lambda users: np.tile(counts, (len(users), 1))


def relevant_lists(matrix: sp.csr_matrix) -> Tuple[np.ndarray, List[np.ndarray]]:
    """(users with at least one item, their item indices) of a [U, I] interaction matrix."""
    matrix = sp.csr_matrix(matrix)
    users = np.flatnonzero(np.diff(matrix.indptr) > 0)
    return users, [matrix.indices[matrix.indptr[u]:matrix.indptr[u + 1]] for u in users]


# --- One evaluation set from ID-level rows: what the pipeline and the benchmark both score. ---

RELEVANT_ALL = "all"            # relevant = every eval-split movie of the user
RELEVANT_LIKED = "rated_4_plus"  # relevant = eval-split movies the user rated 4 or 5
LIKED_RATING = 4.0


@dataclasses.dataclass
class EvalSet:
    """Training and eval ratings by ID, indexed once so every model's lists are scored alike.

    Catalogue (the item index, coverage's denominator) = every movie of the training or eval
    rows. Users scored = the eval users with at least one relevant movie. A recommended ID
    outside the catalogue (a baseline trained on older data) counts as a miss and is left out of
    coverage and popularity rank. Slices: `user_activity=<bucket>` by training ratings.
    """
    user_ids: np.ndarray    # [U] IDs of the eval users, sorted
    movie_ids: np.ndarray   # [I] catalogue IDs, sorted
    train: sp.csr_matrix    # [U_all, I] training interactions; rows = all_user_ids
    all_user_ids: np.ndarray
    eval_ratings: sp.csr_matrix  # [U_all, I] eval ratings (value = rating)
    activity_labels: Optional[np.ndarray] = None  # [U_all] slice label per user

    @classmethod
    def from_rows(cls, train_users, train_movies, eval_users, eval_movies, eval_ratings,
                  activity_bounds: Optional[Sequence[int]] = None) -> "EvalSet":
        """activity_bounds: the user_activity buckets' upper bounds (the Transform's slices,
        models/features.py bucket_labels); None: no slices."""
        train_users, train_movies = np.asarray(train_users), np.asarray(train_movies)
        eval_users, eval_movies = np.asarray(eval_users), np.asarray(eval_movies)
        # Sorted IDs and each row's index among them, without sorting every row (ratings/ids.py).
        all_users, user_codes = ids.sorted_codes(np.concatenate([train_users, eval_users]))
        movies, movie_codes = ids.sorted_codes(np.concatenate([train_movies, eval_movies]))
        u_train, u_eval = user_codes[:len(train_users)], user_codes[len(train_users):]
        m_train, m_eval = movie_codes[:len(train_movies)], movie_codes[len(train_movies):]
        train = interactions(u_train, m_train, len(all_users), len(movies))
        ratings = sp.csr_matrix((np.asarray(eval_ratings, dtype=np.float32), (u_eval, m_eval)),
                                shape=(len(all_users), len(movies)))
        labels = None
        if activity_bounds is not None:
            names = np.array([f"{features.USER_ACTIVITY}={label}" for label in features.bucket_labels(activity_bounds)])
            labels = names[np.searchsorted(np.asarray(activity_bounds), np.diff(train.indptr), side="left")]
        return cls(all_users[np.unique(u_eval)], movies, train, all_users, ratings, labels)

    @property
    def train_counts(self) -> np.ndarray:
        return np.asarray(self.train.sum(axis=0)).ravel()

    def relevant(self, which: str = RELEVANT_ALL) -> sp.csr_matrix:
        if which == RELEVANT_ALL:
            matrix = self.eval_ratings.copy()
        elif which == RELEVANT_LIKED:
            matrix = self.eval_ratings.multiply(self.eval_ratings >= LIKED_RATING).tocsr()
        else:
            raise ValueError(f"unknown relevance {which!r}; known: {RELEVANT_ALL}, {RELEVANT_LIKED}")
        matrix.eliminate_zeros()
        return matrix

    def score(self, lists: Dict, which: str = RELEVANT_ALL) -> Dict[str, RankingMetrics]:
        """Metrics of top-K lists given as {user ID: [movie IDs]}; every scored user needs a list."""
        relevant = self.relevant(which)
        rows, items = relevant_lists(relevant)
        users = self.all_user_ids[rows]
        missing = [u for u in users if u not in lists]
        if missing:
            raise ValueError(f"no list for {len(missing)} eval users, e.g. {missing[0]!r}")
        index = {movie: i for i, movie in enumerate(self.movie_ids.tolist())}
        k = max(len(movies) for movies in lists.values())
        indices = np.full((len(users), k), -1, dtype=np.int64)
        for row, user in enumerate(users):
            found = [index.get(movie, -1) for movie in lists[user]]
            indices[row, :len(found)] = found
        labels = None if self.activity_labels is None else self.activity_labels[rows]
        return evaluate(indices, items, self.train_counts, labels)

    def peer_lists(self, scorer: Scorer, k: int = K) -> Dict:
        """{user ID: [movie IDs]} of a peer fitted on `train`, training movies excluded."""
        rows = np.searchsorted(self.all_user_ids, self.user_ids)
        out = {}
        for chunk in np.array_split(rows, max(1, len(rows) // 1024 + 1)):
            if not chunk.size:
                continue
            top = top_k(scorer(chunk), k, self.train[chunk])
            for row, items in zip(chunk, top):
                out[self.all_user_ids[row]] = self.movie_ids[items[items >= 0]]
        return out

