"""The RankingEvaluator's executor on real artifacts: gzipped tf.Example splits as ExampleGen
writes them, and SavedModels with the exported `recommend` signature (models/export.py); and the
baselines gate's most-popular lists on the same rows.

The models are stand-ins built here, each answering from a fixed table of lists (a trained model
would take minutes): an "oracle" that lists each user's eval movies first, a most-popular one, and
one that recommends random movies. The executor cannot tell them from a trained model: it sees
only the signature.
"""
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx.types import standard_artifacts

from ratings import features
from components import rows, verdicts
from components.ranking_evaluator import executor
from components.ranking_evaluator.component import RankingEvaluation
from models.metrics import ranking

USERS, MOVIES, K = 40, 400, 10
BOUNDS = (0, 20, 50, 150)


def _ratings(seed=0):
    """(train rows, eval rows) of (user, movie, rating): skewed popularity, 30 movies per user."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, MOVIES + 1)
    rows = []
    for user in range(USERS):
        movies = rng.choice(MOVIES, size=30, replace=False, p=popularity / popularity.sum())
        rows += [(f"u{user}", f"m{movie}", float(rng.integers(1, 6))) for movie in movies]
    order = rng.permutation(len(rows))
    cut = int(len(rows) * 0.8)
    return [rows[i] for i in order[:cut]], [rows[i] for i in order[cut:]]


def _write_examples(root, train, test):
    """An Examples artifact with Split-train / Split-eval of gzipped tf.Examples."""
    artifact = standard_artifacts.Examples()
    artifact.uri = str(root)
    artifact.split_names = json.dumps(["train", "eval"])
    for split, split_rows in (("train", train), ("eval", test)):
        os.makedirs(root / f"Split-{split}")
        options = tf.io.TFRecordOptions(compression_type="GZIP")
        with tf.io.TFRecordWriter(str(root / f"Split-{split}" / "data.gz"), options) as writer:
            for user, movie, rating in split_rows:
                writer.write(tf.train.Example(features=tf.train.Features(feature={
                    features.USER_ID: tf.train.Feature(bytes_list=tf.train.BytesList(value=[user.encode()])),
                    features.MOVIE_ID: tf.train.Feature(bytes_list=tf.train.BytesList(value=[movie.encode()])),
                    features.RATING: tf.train.Feature(float_list=tf.train.FloatList(value=[rating])),
                    features.TIMESTAMP: tf.train.Feature(int64_list=tf.train.Int64List(value=[880000000])),
                })).SerializeToString())
    return artifact


class FixedLists(tf.Module):
    """recommend(user_id [B], k [B], exclude_seen [B], exclude_movie_ids [B, E]) -> movie_id [B, k],
    score [B, k], known_user [B], answered from a table of lists (unknown users get row 0)."""

    def __init__(self, lists):
        super().__init__()
        users = sorted(lists)
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(users), tf.range(len(users), dtype=tf.int64)), -1)
        self._lists = tf.constant([lists[u] for u in users])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.int32, name="k"),
                                  tf.TensorSpec([None], tf.bool, name="exclude_seen"),
                                  tf.TensorSpec([None, None], tf.string, name="exclude_movie_ids")])
    def recommend(self, user_id, k, exclude_seen, exclude_movie_ids):
        rows = self._table.lookup(user_id)
        movies = tf.gather(self._lists, tf.maximum(rows, 0))[:, :tf.reduce_max(k)]
        rank = -tf.cast(tf.range(tf.shape(movies)[1]), tf.float32)
        return {features.MOVIE_ID: movies, "score": tf.tile(rank[tf.newaxis], [tf.shape(movies)[0], 1]),
                "known_user": rows >= 0}


def _model(root, lists):
    """A Model artifact whose serving dir (Format-Serving) holds a FixedLists SavedModel."""
    module = FixedLists(lists)
    tf.saved_model.save(module, str(root / "Format-Serving"), signatures={"recommend": module.recommend})
    artifact = standard_artifacts.Model()
    artifact.uri = str(root)
    artifact.id = abs(hash(str(root))) % 10**6
    return artifact


def _lists(train, test, kind, seed=0):
    """{user: K movie IDs, none of the user's training movies}."""
    seen, held = {}, {}
    for user, movie, _ in train:
        seen.setdefault(user, set()).add(movie)
    for user, movie, _ in test:
        held.setdefault(user, []).append(movie)
    counts = {}
    for _, movie, _ in train:
        counts[movie] = counts.get(movie, 0) + 1
    by_popularity = sorted(counts, key=lambda m: (-counts[m], m))
    rng = np.random.default_rng(seed)
    out = {}
    for user in sorted(set(seen) | set(held)):
        allowed = [f"m{m}" for m in range(MOVIES) if f"m{m}" not in seen.get(user, set())]
        if kind == "oracle":
            first = held.get(user, [])
            ranked = first + [m for m in by_popularity if m not in first and m in allowed]
        elif kind == "popular":
            ranked = [m for m in by_popularity if m in allowed]
        else:
            ranked = list(rng.permutation(allowed))
        out[user] = (ranked + [m for m in allowed if m not in ranked])[:K]
    return out


def _evaluate(tmp_path, examples, candidate, baseline=None, lower_bound=None, max_decrease=0.03):
    outputs = {executor.RANKING: [RankingEvaluation()],
               verdicts.output_key(executor.GATE): [verdicts.GateVerdict()]}
    for key, artifacts in outputs.items():
        artifacts[0].uri = str(tmp_path / "out" / key)
        os.makedirs(artifacts[0].uri)
    inputs = {executor.TRAINING_EXAMPLES: [examples], executor.MODEL: [candidate]}
    if baseline is not None:
        inputs[executor.BASELINE_MODEL] = [baseline]
    executor.Executor().Do(inputs, outputs, {
        executor.K: K, executor.NDCG_LOWER_BOUND: lower_bound, executor.MAX_RELATIVE_NDCG_DECREASE: max_decrease,
        executor.USER_ACTIVITY_BOUNDS: json.dumps(BOUNDS)})
    verdict = verdicts.read(outputs[verdicts.output_key(executor.GATE)][0])
    return verdict, executor.load_metrics(outputs[executor.RANKING][0].uri)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("ranking")
    train, test = _ratings()
    examples = _write_examples(root / "examples", train, test)
    built = {kind: _model(root / kind, _lists(train, test, kind)) for kind in ("oracle", "popular", "random")}
    return examples, built, (train, test)


def test_a_model_recommending_random_movies_is_refused_by_an_absolute_bound(tmp_path, models):
    verdict, result = _evaluate(tmp_path, models[0], models[1]["random"], lower_bound=0.05)
    ndcg = result["metrics"]["all"]["candidate"]["overall"]["ndcg"]
    assert not verdict["passed"] and ndcg < 0.05
    assert verdict["checks"][0]["note"] == f"NDCG@10 {ndcg:.4f} is below the bound 0.05"
    assert verdict["checks"][1]["passed"] is None  # no blessed model yet: nothing compared


def test_lists_are_scored_by_the_metric_code_and_pass_with_no_bound_and_no_blessed_model(tmp_path, models):
    verdict, result = _evaluate(tmp_path, models[0], models[1]["popular"])
    assert verdict["passed"] and [c["passed"] for c in verdict["checks"]] == [None]
    # The same lists scored directly by models/metrics/ranking.py, from the rows (not through the model).
    train, test = models[2]
    data = ranking.EvalSet.from_rows([r[0] for r in train], [r[1] for r in train], [r[0] for r in test],
                                     [r[1] for r in test], [r[2] for r in test])
    for which in (ranking.RELEVANT_ALL, ranking.RELEVANT_LIKED):
        expected = data.score(_lists(train, test, "popular"), which)[ranking.OVERALL].as_dict()
        assert result["metrics"][which]["candidate"]["overall"] == pytest.approx(expected)
    # ~24 training ratings per user: the 1-20 and 21-50 activity slices, which partition the users.
    by_slice = dict(result["metrics"]["all"]["candidate"])
    overall = by_slice.pop("overall")
    assert set(by_slice) == {"user_activity=1-20", "user_activity=21-50"}
    assert sum(m["users"] for m in by_slice.values()) == overall["users"] == USERS


def test_worse_than_the_last_blessed_model_beyond_the_relative_tolerance_is_refused(tmp_path, models):
    examples, built, _ = models
    verdict, result = _evaluate(tmp_path, examples, built["popular"], baseline=built["oracle"])
    metrics = result["metrics"]["all"]
    assert metrics["baseline"]["overall"]["ndcg"] == pytest.approx(1.0)
    (check,) = verdict["checks"]
    assert not verdict["passed"] and check["note"].startswith(
        f"NDCG@10 {metrics['candidate']['overall']['ndcg']:.4f} vs last blessed 1.0000: ")
    assert check["note"].endswith("(at least -3.0%)") and check["limit"] == pytest.approx(0.97)
    # Within the tolerance it passes.
    verdict, _ = _evaluate(tmp_path / "again", examples, built["popular"], baseline=built["oracle"], max_decrease=1.0)
    assert verdict["passed"]


def test_most_popular_lists_of_the_baselines_gate_are_the_popular_models_lists(models):
    """The baselines gate's most-popular lists (EvalSet.peer_lists of ranking.fit_popularity) are
    the stand-in "popular" model's, built here from the rows by hand: the same NDCG."""
    examples, _, (train, test) = models
    eval_set = rows.read_eval_set(examples, None, [examples])
    peer = eval_set.score(eval_set.peer_lists(ranking.fit_popularity(eval_set.train), K))[ranking.OVERALL]
    by_hand = eval_set.score({user.encode(): [movie.encode() for movie in movies]
                              for user, movies in _lists(train, test, "popular").items()})[ranking.OVERALL]
    assert peer.ndcg == pytest.approx(by_hand.ndcg) and peer.recall == pytest.approx(by_hand.recall)
