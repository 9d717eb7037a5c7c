"""`recommend` over a 116,000-movie catalogue (the size `make bench-catalog` serves), through the
exported model with the history head and the pushed servable's wider seen tables (models/seen.py:
users the rating model does not know, such as eval-only users, have rows too): the answer must
be the exact top-10 of the head's tables.

Referee: numpy ranking the same tables (user vector = sum of the history rows of the movies the
user rated, times every candidate row; rated movies excluded), independent of TensorFlow's graph.
How fast the answer comes is `make bench-catalog`'s job (benchmarks/README.md): speed targets
live in benchmarks, not timed tests.
"""
import numpy as np
import pytest
import tensorflow as tf

from models import export, seen as seen_lib
from models.retrieval import history_head
from models.features import MOVIE_XF, RATING_XF, USER_XF
from models.hyperparameters import Hyperparameters
from models.rating.model import build_model
from serving import contract
from serving.contract import KNOWN_USER, MOVIE_ID, SCORE
from tests.transform import analyze_and_transform, catalogue_batch, raw_row

NUM_MOVIES, NUM_USERS, K = 116_000, 4_000, 10
# Users with ratings the rating model never trained on (an eval split's, an older span's).
NUM_OTHER_USERS, OTHER_RATINGS = 1_000, 10_000


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    """(loaded servable, catalogue, head tables, seen tables) of a model over NUM_MOVIES rated movies."""
    tmp = tmp_path_factory.mktemp("catalogue")
    rng = np.random.default_rng(0)
    # Every movie rated once, plus Zipf-popular extra ratings: a long tail, as real catalogues have.
    movies = np.concatenate([np.arange(NUM_MOVIES), np.minimum(rng.zipf(1.4, 20_000) - 1, NUM_MOVIES - 1)])
    users = rng.integers(0, NUM_USERS, len(movies))
    rows = [raw_row(f"u{u}".encode(), f"m{m}".encode(), float(rng.integers(1, 6))) for u, m in zip(users, movies)]
    transformed, output = analyze_and_transform(rows, tmp)
    movies_and_users, batch = catalogue_batch(rows, transformed, output)
    assert movies_and_users.num_movies == NUM_MOVIES
    model = build_model(movies_and_users.num_users, movies_and_users.num_movies, 3.0,
                        Hyperparameters(embedding_dim=8))
    model.fit({k: batch[k] for k in (USER_XF, MOVIE_XF)}, batch[RATING_XF].reshape(-1), epochs=1,
              batch_size=4096, verbose=0)
    other_users = movies_and_users.num_users + rng.integers(0, NUM_OTHER_USERS, OTHER_RATINGS)
    user_ids = np.concatenate([movies_and_users.user_ids, [f"other{u}".encode() for u in range(NUM_OTHER_USERS)]])
    seen = seen_lib.from_pairs(np.concatenate([movies_and_users.seen_users(), other_users]), user_ids.astype(object),
                               np.concatenate([movies_and_users.seen_movies, rng.integers(0, NUM_MOVIES, OTHER_RATINGS)]))
    tables = history_head.fit(seen.user_rows(), seen.movies, movies_and_users.num_movies, l2=500.0, dim=64,
                           popularity_l2=0.5, popularity_weight=0.3)
    export.save(model, output, movies_and_users, str(tmp / "model"), tables, seen)
    return tf.saved_model.load(str(tmp / "model")), movies_and_users, tables, seen


def reference_top(seen_tables, tables, user_id):
    """(scores of every movie, the best K scores, the user's rated movies) by numpy, those excluded."""
    seen = seen_tables.of_user(user_id)
    vector = tables.history[seen].astype(np.float64).sum(axis=0)
    vector[-1] = tables.popularity_weight if len(seen) else 1.0
    scores = tables.candidates.astype(np.float64) @ vector
    scores[seen] = -np.inf
    return scores, np.sort(scores)[::-1][:K], seen


def test_recommend_over_116k_movies_is_the_exact_top_10_of_the_head(large):
    servable, movies_and_users, tables, seen_tables = large
    index = {movie: i for i, movie in enumerate(movies_and_users.movie_ids)}
    users = [movies_and_users.user_ids[i] for i in (0, 1, 17, 1_000, NUM_USERS - 1)] + [b"other7", b"stranger"]
    inputs = contract.recommend_inputs([u.decode() for u in users], [K] * len(users), [True] * len(users),
                                       [[]] * len(users))
    answer = servable.signatures["recommend"](**{key: tf.constant(value) for key, value in inputs.items()})
    assert answer[KNOWN_USER].numpy().tolist() == [True] * 6 + [False]
    for row, user in enumerate(users):
        scores, best, seen = reference_top(seen_tables, tables, user)
        listed = [index[m] for m in answer[MOVIE_ID].numpy()[row][:K]]
        assert not set(listed) & set(seen.tolist())
        # Ties (movies rated by the same users) may come in any order: compare scores, not IDs.
        np.testing.assert_allclose(scores[listed], best, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(answer[SCORE].numpy()[row][:K], best, rtol=1e-4, atol=1e-6)
