"""What a pushed model's `recommend` lists for users, and what they rated, read as a client and a
user would: the tests of issue 21 (tests/e2e/test_seen*.py) compare the two."""
import collections

import numpy as np
import tensorflow as tf

from serving import contract
from serving.contract import KNOWN_USER, MOVIE_ID, SCORE
from tests.helpers import referee

BATCH = 64


def rated_by_user(*ratings_files):
    """{user ID: movie IDs} of ratings files, as the user handed them over (each read as csv.reader
    reads it: tests/helpers.py `referee`)."""
    rated = collections.defaultdict(set)
    for path in ratings_files:
        for user, movie, _, _ in referee(path):
            rated[user].add(movie)
    return rated


def text(values):
    return [v.decode() for v in np.asarray(values).reshape(-1)]


def recommend(servable, users, k, exclude_seen=True):
    """(movie IDs [B, K], scores, known_user) of the SavedModel's recommend, no exclusions given."""
    inputs = contract.recommend_inputs(users, [k] * len(users), [exclude_seen] * len(users), [[]] * len(users))
    out = servable.signatures[contract.RECOMMEND](**{key: tf.constant(v) for key, v in inputs.items()})
    return out[MOVIE_ID].numpy(), out[SCORE].numpy(), out[KNOWN_USER].numpy()


def full_lists(servable, users):
    """{user: every movie recommend lists over the whole catalogue with exclude_seen on} (with k
    the catalogue's size, excluded movies come last, scored -inf: not listed)."""
    k = len(servable.movie_ids.numpy())
    lists = {}
    for start in range(0, len(users), BATCH):
        chunk = users[start:start + BATCH]
        movies, scores, _ = recommend(servable, chunk, k)
        lists.update({user: {m.decode() for m, s in zip(row, row_scores) if np.isfinite(s)}
                      for user, row, row_scores in zip(chunk, movies, scores)})
    return lists
