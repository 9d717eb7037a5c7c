"""Everything the user told us (issue 21): the pushed model knows every rating it was given, and the
model the gates judged still knows only its training split.

Referees: the ratings files handed to `movierec run` (read with the csv module), the splits the
run's ExampleGen wrote (its Examples artifact), and the history head fitted in numpy on exactly
the rows each model should know (the same closed form, models/retrieval/history_head.py `fit`, on rows this
test chooses), scored as test_catalogue_scale.py scores it.
"""
import collections

import numpy as np
import pytest
import tensorflow as tf
from tfx.components.evaluator import constants
from tfx.utils import path_utils

from components.model_gate import executor as model_gate
from components.rows import EVAL, TRAIN, read_split
from pipeline import metadata
from models.retrieval import history_head
from serving.client import GrpcBackend, RecommenderClient
from tests.served_lists import full_lists, rated_by_user, recommend, text
from tests.serving_server import MODEL


@pytest.fixture(scope="module")
def models(trained_run):
    """(judged model, pushed model, run summary, {user: rated movies} of the file)."""
    run, result = trained_run
    assert result.returncode == 0, result.stderr[-3000:]
    summary = run.summary()
    # The model the gates judged, as the ModelGate's blessing names it.
    blessing = [b for b in metadata.connect(run.config).get_artifacts_by_type("ModelBlessing")
                if model_gate.DECIDED_BY in b.custom_properties][-1]
    judged_uri = blessing.custom_properties[constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY].string_value
    judged = tf.saved_model.load(path_utils.serving_model_path(judged_uri))
    pushed = tf.saved_model.load(f"{run.config.push_base}/{run.versions()[-1]}")
    return judged, pushed, summary, rated_by_user(*run.data.glob("ratings*.csv"))


def test_no_movie_the_user_rated_comes_back_with_exclude_seen(models, server):
    """Every user's whole-catalogue list leaves out exactly the movies they rated in the file: the
    eval split's (which the judged model never saw) included, nothing else left out."""
    _, pushed, summary, rated = models
    catalogue = set(text(pushed.movie_ids.numpy()))
    lists = full_lists(pushed, sorted(rated))
    assert {user: lists[user] & rated[user] for user in rated if lists[user] & rated[user]} == {}
    assert all(lists[user] == catalogue - rated[user] for user in rated)
    # The eval split's ratings are what was missing: there are some, of catalogue movies.
    eval_rows = read_split(summary.examples, EVAL)
    eval_users = eval_rows.users
    assert sum(m.decode() in catalogue for m in eval_rows.movies) > 100

    # The same through `movierec serve` (the pushed deploy files, batching on), as a client asks:
    # the users with the most eval-split ratings, top 20 with exclude_seen and nothing else.
    client = RecommenderClient(GrpcBackend(server.address, MODEL))
    try:
        for user, _ in collections.Counter(u.decode() for u in eval_users).most_common(5):
            answer = client.recommend(user, 20, exclude_seen=True)
            assert answer.known and len(answer.items) == 20
            assert not {item.id for item in answer.items} & rated[user]
    finally:
        client.backend.close()


def test_a_brand_new_user_gets_the_most_rated_movies(models):
    """The most rated in everything the pipeline was given (every split), in that order."""
    _, pushed, _, rated = models
    counts = collections.Counter(movie for movies in rated.values() for movie in movies)
    movies, _, known = recommend(pushed, ["someone-new"], 10)
    assert known.tolist() == [False]
    # Movies with equal counts may come in any order: compare counts, not IDs.
    assert [counts[m] for m in text(movies[0])] == sorted(counts.values(), reverse=True)[:10]


def head_top(servable, ratings, hparams, users, k=10):
    """{user: the best k scores} of the history head fitted on (user ID, movie ID, timestamp)
    `ratings` over the servable's catalogue (recent popularity counted on them), each user's
    history and exclusions being their movies there."""
    index = {m: i for i, m in enumerate(text(servable.movie_ids.numpy()))}
    ratings = [(u, index[m], t) for u, m, t in ratings if m in index]
    pairs = sorted({(u, m) for u, m, _ in ratings})
    user_rows = {u: i for i, u in enumerate(sorted({u for u, _ in pairs}))}
    rows = np.array([user_rows[u] for u, _ in pairs])
    movies = np.array([m for _, m in pairs])
    recent = history_head.recent_popularity(np.array([user_rows[u] for u, _, _ in ratings]),
                                            np.array([m for _, m, _ in ratings]), np.array([t for _, _, t in ratings]),
                                            len(index), hparams.retrieval_recency_days)
    tables = history_head.fit(rows, movies, len(index), hparams.retrieval_l2, hparams.retrieval_dim,
                              hparams.retrieval_popularity_l2, hparams.retrieval_popularity_weight,
                              recent, hparams.retrieval_recency_weight)
    extra = len(tables.weights)
    top = {}
    for user in users:
        seen = movies[rows == user_rows[user]]
        vector = tables.history[seen].astype(np.float64).sum(axis=0)
        vector[-extra:] = tables.weights
        scores = tables.candidates.astype(np.float64) @ vector
        scores[seen] = -np.inf
        top[user] = np.sort(scores)[::-1][:k]
    return top


def test_evaluated_lists_never_used_eval_ratings_and_the_pushed_tables_hold_them(models, trained_run):
    """The judged model (what the RankingEvaluator's and the other gates' lists come from) excludes and ranks from the
    train split only; the pushed one from every rating of the file, with its head refitted on them."""
    judged, pushed, summary, rated = models
    run, result = trained_run
    train_rows, eval_rows = read_split(summary.examples, TRAIN), read_split(summary.examples, EVAL)
    train = list(zip(text(train_rows.users), text(train_rows.movies), train_rows.timestamps.tolist()))
    eval_users = eval_rows.users
    every = [(u, m) for u, movies in rated.items() for m in movies]
    assert len(train) + len(eval_users) == len(every)
    dated = train + list(zip(text(eval_rows.users), text(eval_rows.movies), eval_rows.timestamps.tolist()))
    assert sorted((u, m) for u, m, _ in dated) == sorted(every)  # the file's ratings, with their dates
    # The run summary says which ratings each model used.
    assert f"evaluated model: {len(train):,} training ratings (its train split)" in result.stdout
    assert f"every accepted rating, {len(every):,} (span 0 (train, eval))" in result.stdout
    train_by_user = collections.defaultdict(set)
    for user, movie, _ in train:
        train_by_user[user].add(movie)
    catalogue = set(text(judged.movie_ids.numpy()))
    users = sorted({u.decode() for u in eval_users} & set(train_by_user))

    # Exclusions: the judged model leaves out the train split only, so the eval movies it is scored
    # on can be listed; the pushed model leaves out every rated movie.
    judged_lists, pushed_lists = full_lists(judged, users), full_lists(pushed, users)
    assert all(judged_lists[u] == catalogue - train_by_user[u] for u in users)
    assert all(pushed_lists[u] == catalogue - rated[u] for u in users)

    # History and head: the judged scores are the head fitted on the train split, the pushed
    # scores the head fitted on every rating (the users with the most eval ratings).
    hparams = run.config.hyperparameters
    most_eval = [u for u, _ in collections.Counter(u.decode() for u in eval_users).most_common() if u in users][:8]
    assert hparams.retrieval_recency_weight > 0  # the shared run ranks with recent popularity too
    for servable, ratings in ((judged, train), (pushed, dated)):
        expected = head_top(servable, ratings, hparams, most_eval)
        _, scores, _ = recommend(servable, most_eval, 10)
        for user, row in zip(most_eval, scores):
            np.testing.assert_allclose(row, expected[user], rtol=1e-3, atol=1e-5)
