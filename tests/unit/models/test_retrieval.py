"""The retrieval head (models/retrieval/history_head.py): its closed form, and `recommend` ranking with it.

The planted catalogue: two groups of users, each watching (rating 2) most of its own group's ten
movies, and three "cult" movies rated 5 by two users of group B. What a user of group A should be
recommended is the rest of group A's movies; a model fitted to ratings ranks the cult movies
first instead (issue 15's finding on MovieLens-100K, in miniature). The catalogue is planted in
tests/transform.py beside test_export's and test_preprocessing's rows (one tf.Transform run for all
three): those users and movies share nothing with the groups.
"""
import tracemalloc

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from benchmarks import ranking_peers
from models import export, trainer
from models.metrics import ranking
from models.retrieval import history_head
from models.hyperparameters import Hyperparameters
from ratings import features, synth
from serving import contract
from serving.contract import KNOWN_USER, MOVIE_ID
from tests.transform import CULT, GROUP_MOVIES, SHARED_ROWS, WATCHED, planted_ratings


@pytest.fixture(scope="module")
def planted(shared_model, tmp_path_factory):
    """(servables by head, the catalogue, the unwatched movies of group A users): the rating head is
    the shared rating model (tests/unit/conftest.py), the history head its export with the head's tables."""
    tmp = tmp_path_factory.mktemp("retrieval")
    _, unwatched = planted_ratings()
    movies_and_users = shared_model.catalogue
    tables = history_head.fit(movies_and_users.seen_users(), movies_and_users.seen_movies,
                           movies_and_users.num_movies, l2=5.0, dim=8)
    export.save(shared_model.model, shared_model.output, movies_and_users, str(tmp / "history"), tables)
    servables = {"rating": (shared_model.servable, shared_model.path),
                 "history": (tf.saved_model.load(str(tmp / "history")), str(tmp / "history"))}
    return servables, movies_and_users, unwatched


def stars_by_movie():
    """{movie: [every rating it got]} of all the shared rows."""
    stars = {}
    for row in SHARED_ROWS:
        stars.setdefault(row[features.MOVIE_ID][0].decode(), []).append(row[features.RATING][0])
    return stars


def top(servable, users, k):
    inputs = contract.recommend_inputs(users, [k] * len(users), [True] * len(users), [[]] * len(users))
    answer = servable.signatures["recommend"](**{key: tf.constant(value) for key, value in inputs.items()})
    return [{m.decode() for m in row} for row in answer[MOVIE_ID].numpy()], answer


def test_history_head_ranks_the_planted_movies_first_and_the_rating_model_does_not(planted):
    servables, _, unwatched = planted
    users = sorted(unwatched)
    found = {head: top(servable, users, GROUP_MOVIES - WATCHED)[0] for head, (servable, _) in servables.items()}
    assert found["history"] == [unwatched[u] for u in users]
    rating_hits = [len(found["rating"][i] & unwatched[u]) for i, u in enumerate(users)]
    assert sum(rating_hits) < 0.5 * len(users) * (GROUP_MOVIES - WATCHED)
    # The rating model's lists are what strangers rated highly: the cult movies, rated 5 by two of
    # group B (or the other worlds' movies rated 4-5, tests/transform.py), none of group A's.
    favourites = {movie for movie, stars in stars_by_movie().items() if min(stars) >= 4.0}
    assert {m for m in favourites if m.startswith("cult")} == {f"cult-m{c}" for c in range(CULT)}
    assert all(any(m in favourites for m in row) for row in found["rating"])


def test_users_without_history_get_the_most_rated_movies_in_order(planted):
    servables, movies_and_users, _ = planted
    servable, _ = servables["history"]
    counts = {}
    for m in movies_and_users.seen_movies:
        counts[m] = counts.get(m, 0) + 1
    _, answer = top(servable, ["nobody", "a-u0"], 5)
    assert not answer[KNOWN_USER].numpy()[0]
    listed = [movies_and_users.movie_ids.tolist().index(m) for m in answer[MOVIE_ID].numpy()[0]]
    listed_counts = [counts[m] for m in listed]
    assert listed_counts == sorted(counts.values(), reverse=True)[:5]
    # Not by relying on the vocabulary's most-rated-first order: with the least rated movie at
    # index 0, an empty history still ranks by count.
    movies = np.repeat(np.arange(6), np.arange(1, 7))  # movie i rated by i + 1 users
    users = np.concatenate([np.arange(count) for count in range(1, 7)])
    tables = history_head.fit(users, movies, 6, l2=1.0, dim=2)
    nobody = tf.RaggedTensor.from_row_lengths(tf.zeros([0], tf.int64), [0])
    scores = history_head.catalogue_scores(tables.history, tables.candidates, tables.popularity_weight, nobody).numpy()[0]
    assert np.argsort(-scores).tolist() == [5, 4, 3, 2, 1, 0]


def test_popularity_weight_moves_known_users_towards_the_most_rated_movies():
    """Weight 0: a known user's scores are EASE's alone (the item-item weights over their history);
    a weight far above the EASE scores: their list is the most-rated movies, in order."""
    movies = np.repeat(np.arange(6), np.arange(1, 7))  # movie i rated by i + 1 users
    users = np.concatenate([np.arange(count) for count in range(1, 7)])
    history_of_user_0 = tf.RaggedTensor.from_row_lengths(tf.constant([0], tf.int64), [1])
    plain = history_head.fit(users, movies, 6, l2=1.0, dim=6)
    scores = history_head.catalogue_scores(plain.history, plain.candidates, plain.popularity_weight,
                                        history_of_user_0).numpy()[0]
    np.testing.assert_allclose(scores, head_weights(plain, 6)[0], atol=1e-5)
    heavy = history_head.fit(users, movies, 6, l2=1.0, dim=6, popularity_weight=1e4)
    scores = history_head.catalogue_scores(heavy.history, heavy.candidates, heavy.popularity_weight,
                                        history_of_user_0).numpy()[0]
    assert np.argsort(-scores).tolist() == [5, 4, 3, 2, 1, 0]


def op_types(graph_def):
    """Every op type in a GraphDef, its function library included (tf.cond branches live there)."""
    nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
    return [n.op for n in nodes]


@pytest.mark.parametrize("head", ["history", "rating"])
def test_recommend_is_one_matrix_product_over_the_catalogue_and_one_top_k(planted, head):
    servables, movies_and_users, _ = planted
    graph_def = servables[head][0].signatures["recommend"].graph.as_graph_def()
    ops = op_types(graph_def)
    products = [op for op in ops if op in ("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum")]
    assert len(products) == 1 and ops.count("TopKV2") == 1
    if head == "history":
        function = [f for f in graph_def.library.function if any(n.op == "MatMul" for n in f.node_def)]
        product = next(n for f in function for n in f.node_def if n.op == "MatMul")
        assert product.attr["transpose_b"].b  # [B, dim + 1] x [movies, dim + 1]^T


def off_diagonal(matrix):
    return matrix - np.diag(np.diag(matrix))


def head_weights(tables, rank):
    """The head's item-item matrix history @ candidates.T (the popularity column left out)."""
    return tables.history[:, :rank].astype(np.float64) @ tables.candidates[:, :rank].T.astype(np.float64)


def random_pairs(seed=3, users=30, movies=12, pairs=300):
    rng = np.random.default_rng(seed)
    return rng.integers(0, users, pairs), rng.integers(0, movies, pairs)


def test_full_rank_head_solves_eases_constrained_ridge_regression():
    """Referee: the optimality conditions of EASE's problem (Steck 2019, eq. 1), not its formula:
    min ||X - XB||^2 + l2 ||B||^2 with diag(B) = 0 is solved where (X'X + l2 I) B - X'X is zero
    off the diagonal (the diagonal is free: the constraint's multipliers). The head's own diagonal
    is not B's zero: it only scores movies a user already watched, which `recommend` excludes."""
    users, movies = random_pairs()
    weights = off_diagonal(head_weights(history_head.fit(users, movies, 12, l2=2.0, dim=12), 12))
    watched = np.zeros((30, 12))
    watched[users, movies] = 1.0
    gram = watched.T @ watched
    residual = (gram + 2.0 * np.eye(12)) @ weights - gram
    np.testing.assert_allclose(off_diagonal(residual), 0.0, atol=1e-3)


@pytest.mark.parametrize("popularity_l2", [0.0, 0.5])
@pytest.mark.parametrize("dim", [3, 8])
def test_low_rank_head_is_ease_on_the_best_low_rank_ratings_matrix(popularity_l2, dim):
    """Referee: dense EASE computed the textbook way (invert X'X + Lambda, B = -P / diag(P)) on
    the rank-`dim` truncation of X Lambda^-1/2 (numpy's full SVD, Eckart-Young) scaled back: the
    head must give the same off-diagonal weights from its `dim` triplets of the sparse matrix,
    ARPACK's at rank 3 of 15 movies, LAPACK's dense ones at rank 8 (most of the smaller side,
    as MovieLens-100K's rank 512 of 943 users), keeping only the top 8."""
    users, movies = random_pairs(seed=5, users=40, movies=15, pairs=320)
    low = history_head.fit(users, movies, 15, l2=2.0, dim=dim, popularity_l2=popularity_l2)
    watched = np.zeros((40, 15))
    watched[users, movies] = 1.0
    penalty = 2.0 + popularity_l2 * watched.sum(axis=0)
    left, singular, right = np.linalg.svd(watched / np.sqrt(penalty), full_matrices=False)
    truncated = (left[:, :dim] * singular[:dim]) @ right[:dim] * np.sqrt(penalty)
    precision = np.linalg.inv(truncated.T @ truncated + np.diag(penalty))
    ease = off_diagonal(-precision / np.diag(precision))
    np.testing.assert_allclose(off_diagonal(head_weights(low, dim)), ease, atol=1e-4)
    # And it is not full EASE: the truncation is what makes the head scale.
    full = off_diagonal(head_weights(history_head.fit(users, movies, 15, l2=2.0, dim=15,
                                                   popularity_l2=popularity_l2), 15))
    assert np.abs(full - ease).max() > 1e-2


def test_head_scales_to_a_catalogue_of_100k_movies_dense_ease_cannot_hold():
    """A 116,000-movie catalogue (bench-catalog's size): dense EASE's movies x movies matrix
    would be 108 GB of float64, a dense users x movies one 9 GB of float32; the head fits in
    memory linear in the catalogue (peak measured by tracemalloc, which numpy reports its arrays
    to: ~70 MB, for two 8 MB tables), and new movies nobody watched score only by (zero) popularity."""
    rng = np.random.default_rng(0)
    num_movies, users = 116_000, rng.integers(0, 20_000, 200_000)
    movies = np.minimum(rng.zipf(1.3, len(users)) - 1, num_movies - 1001)
    tracemalloc.start()
    try:
        tables = history_head.fit(users, movies, num_movies, l2=500.0, dim=16, popularity_l2=0.5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 300e6, f"fitting the head peaked at {peak / 1e6:.0f} MB"
    assert tables.history.shape == tables.candidates.shape == (num_movies, 17)
    assert np.isfinite(tables.history).all() and np.isfinite(tables.candidates).all()
    np.testing.assert_array_equal(tables.candidates[-1000:], 0.0)


def test_settings_the_head_cannot_take_are_refused():
    with pytest.raises(ValueError, match="hyperparameters.retrieval: must be one of rating, history, got 'ease'"):
        Hyperparameters.from_dict({"retrieval": "ease"})
    with pytest.raises(ValueError, match="hyperparameters.retrieval_dim: must be an integer of at least 1, got 0"):
        Hyperparameters.from_dict({"retrieval": "history", "retrieval_dim": 0})
    with pytest.raises(ValueError, match="hyperparameters.retrieval_l2: must be positive, got 0.0"):
        Hyperparameters.from_dict({"retrieval": "history", "retrieval_l2": 0.0})
    with pytest.raises(ValueError, match="hyperparameters.retrieval_popularity_l2: must be 0 or more, got -0.1"):
        Hyperparameters.from_dict({"retrieval": "history", "retrieval_popularity_l2": -0.1})
    with pytest.raises(ValueError, match="hyperparameters.retrieval_popularity_weight: must be 0 or more, got -1.0"):
        Hyperparameters.from_dict({"retrieval": "history", "retrieval_popularity_weight": -1.0})
    with pytest.raises(ValueError, match="hyperparameters.retrieval_recency_weight: must be 0 or more, got -1.0"):
        Hyperparameters.from_dict({"retrieval": "history", "retrieval_recency_weight": -1.0})
    with pytest.raises(ValueError, match="hyperparameters.retrieval_recency_days: must be positive, got 0.0"):
        Hyperparameters.from_dict({"retrieval": "history", "retrieval_recency_days": 0.0})


def test_recent_popularity_counts_the_users_of_the_newest_days():
    """Referee: the count done by hand over the planted ratings (a pair rated twice counts once;
    a rating exactly `days` before the newest is recent; older ones are not)."""
    day = history_head.DAY_SECONDS
    newest = 1_000 * day
    ratings = [  # (user, movie, timestamp)
        (0, 0, newest), (1, 0, newest - day), (2, 0, newest - 30 * day),      # movie 0: 3 users recently
        (0, 1, newest - 2 * day), (0, 1, newest - 3 * day),                   # movie 1: 1 user, twice
        (1, 2, newest - 31 * day), (2, 2, newest - 400 * day),                # movie 2: none recently
        (3, 3, newest - 10 * day), (4, 3, newest - 40 * day),                 # movie 3: 1 user recently
    ]
    users, movies, stamps = (np.array(column) for column in zip(*ratings))
    recent = history_head.recent_popularity(users, movies, stamps, 5, days=30)
    np.testing.assert_allclose(recent, [3 / 3, 1 / 3, 0.0, 1 / 3, 0.0])


def test_recency_weight_brings_what_everybody_watches_now_to_known_users_only():
    """Six old movies rated by many users long ago, two new releases rated by a few users this
    month. Weight 0: the tables and scores are exactly those without recency (one column fewer).
    A weight: a known user's list starts with the new releases, most recent viewers first; a user
    with no history still gets the all-time most-rated movies."""
    day = history_head.DAY_SECONDS
    rng = np.random.default_rng(0)
    users, movies, stamps = [], [], []
    for user in range(30):
        for movie in rng.choice(6, 4, replace=False):  # old movies, a year ago
            users.append(user), movies.append(movie), stamps.append(0)
    for movie, viewers in ((6, 5), (7, 3)):  # new releases, this month
        for user in range(30, 30 + viewers):
            users.append(user), movies.append(movie), stamps.append(365 * day)
    users, movies, stamps = np.array(users), np.array(movies), np.array(stamps)
    recent = history_head.recent_popularity(users, movies, stamps, 8, days=30)
    np.testing.assert_allclose(recent, [0, 0, 0, 0, 0, 0, 1.0, 0.6])

    plain = history_head.fit(users, movies, 8, l2=1.0, dim=4)
    unweighted = history_head.fit(users, movies, 8, l2=1.0, dim=4, recent=recent, recency_weight=0.0)
    np.testing.assert_array_equal(unweighted.history, plain.history)
    np.testing.assert_array_equal(unweighted.candidates, plain.candidates)
    weighted = history_head.fit(users, movies, 8, l2=1.0, dim=4, recent=recent, recency_weight=1e3)
    assert weighted.history.shape == (8, 4 + 2)
    np.testing.assert_array_equal(weighted.candidates[:, -1], recent.astype(np.float32))

    user_0 = tf.RaggedTensor.from_row_lengths(tf.constant(movies[users == 0], tf.int64), [4])
    nobody = tf.RaggedTensor.from_row_lengths(tf.zeros([0], tf.int64), [0])
    scores = lambda tables, who: history_head.catalogue_scores(
        tables.history, tables.candidates, tables.weights, who).numpy()[0]
    np.testing.assert_array_equal(scores(unweighted, user_0), scores(plain, user_0))
    unseen = [m for m in np.argsort(-scores(weighted, user_0)) if m not in movies[users == 0]]
    assert unseen[:2] == [6, 7]
    assert 6 not in np.argsort(-scores(plain, user_0))[:2]
    counts = np.bincount(movies, minlength=8)
    assert np.argsort(-scores(weighted, nobody), kind="stable").tolist() == np.argsort(-counts, kind="stable").tolist()


def test_a_recency_weight_needs_the_ratings_dates():
    with pytest.raises(ValueError, match="recency_weight needs the movies' recent popularity"):
        history_head.fit(np.array([0]), np.array([0]), 1, l2=1.0, dim=1, recency_weight=1.0)


def test_popularity_discount_brings_the_lists_nearer_the_planted_picks(tmp_path):
    """A `movierec data synth` world (planted tastes; raters pick by taste and popularity), a random
    20% of its ratings held out. The head as the Trainer fits it (trainer.retrieval_head) at a rank
    far below the catalogue's (as at 118k movies) over-scores the most-rated movies; dividing each
    movie's scores by (count + 1)^0.2 lists the held-out picks better (NDCG@10 0.295 -> 0.306 on this
    world). Referee: the world's own choice model, ranking by expected picks (the planted ceiling),
    scored by the same code: the discount closes part of the gap to it. Users with no history
    still get the most-rated movies (the popularity column is not discounted)."""
    synth.synthesize(synth.SynthSpec(ratings=50_000, users=1_000, movies=2_000, seed=0), tmp_path)
    world = synth.World.load(tmp_path)
    ratings = pd.read_csv(tmp_path / features.RATINGS_FILE).astype({features.USER_ID: str, features.MOVIE_ID: str})
    held_out = np.random.default_rng(0).random(len(ratings)) < 0.2
    train, test = ratings[~held_out], ratings[held_out]
    data = ranking.EvalSet.from_rows(train[features.USER_ID].values, train[features.MOVIE_ID].values,
                                     test[features.USER_ID].values, test[features.MOVIE_ID].values,
                                     test[features.RATING].values.astype(np.float32))
    pairs = data.train.tocoo()

    def ndcg(scorer):
        return ranking_peers.score_peer(scorer, data.train, data.relevant())[ranking.OVERALL].ndcg

    def head(discount):
        hparams = Hyperparameters(retrieval="history", retrieval_dim=16, retrieval_l2=200.0,
                                  retrieval_popularity_l2=0.5, retrieval_popularity_discount=discount)
        return trainer.retrieval_head(pairs.row, pairs.col, data.train.shape[1], hparams, None)

    plain, discounted = head(0.0), head(0.2)
    scores = lambda tables: lambda users: np.asarray(data.train[users] @ tables.history) @ tables.candidates.T
    users, movies = synth.index_of(data.all_user_ids), synth.index_of(data.movie_ids)
    ceiling = ndcg(lambda rows: world.expected_picks(users[rows], movies))
    before, after = ndcg(scores(plain)), ndcg(scores(discounted))
    assert after >= 1.02 * before, (before, after)
    assert before < after < ceiling
    np.testing.assert_array_equal(discounted.candidates[:, -1], plain.candidates[:, -1])
    np.testing.assert_array_equal(discounted.history, plain.history)
