"""The exported servable on a tiny catalogue we control: every signature, exclusions, unknown IDs.

The catalogue is planted in tests/transform.py (TITLES, RATED, YEARS, USERS) beside test_retrieval's
and test_preprocessing's worlds, all read from one tf.Transform run: those users and movies share
nothing with u1-u4 and m1-m4, so lists are asked over the whole catalogue (k = its size) and what a
user may be listed is every catalogue movie but what they rated or left out."""
import time

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.saved_model import loader_impl

from models import catalog, export, seen as seen_lib
from models.rating import autorec
from models.retrieval import history_head
from models.layers import side_features
from models.rating import model as model_lib
from models.servable import Ratings, export_servable, restore_rating_model
from models.features import RATING_XF
from ratings import features
from serving import contract
from models.hyperparameters import Hyperparameters
from tests.served_lists import full_lists, recommend as served_recommend
from tests.transform import RATED, TITLES, catalogue_batch


@pytest.fixture(scope="module")
def transformed(shared_transform):
    """The shared rows through tf.Transform (tests/unit/conftest.py), read by both servables: (rows,
    transformed rows, TFTransformOutput)."""
    return shared_transform


def rated_in(rows):
    """{user: {movies}} of raw rows: the referee for seen lists and exclusions."""
    rated = {}
    for row in rows:
        rated.setdefault(row[features.USER_ID][0].decode(), set()).add(row[features.MOVIE_ID][0].decode())
    return rated


@pytest.fixture(scope="module")
def ids_only(shared_model):
    """The plainest variant: mf on IDs alone, its learning rate decaying over the fit as
    configs/synthetic-scale.yaml's does (tests/unit/conftest.py, test_retrieval's rating head too).
    (SavedModel, its path, the catalogue, the folder holding it and catalog.npz, its
    hyperparameters, its fitted weights)."""
    m = shared_model
    return m.servable, m.path, m.catalogue, m.folder, m.hparams, m.weights


def test_the_servable_restores_a_model_fitted_with_a_decaying_rate(ids_only):
    """ServableExport rebuilds the judged rating model and restores its weights by checkpoint,
    every object matched (models/servable.py): a model fitted with `learning_rate_decay: cosine`
    has no rate variable in its checkpoint (the 10M run's ServableExport failed on that)."""
    _, path, _, tmp, hparams, weights = ids_only
    restored, _, _ = restore_rating_model(path, str(tmp / "catalog.npz"), hparams)
    for got, want in zip(restored.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.fixture(scope="module", params=["ids_only", "judged"], ids=["ids-only", "side-features"])
def servable(request):
    """Each signature test runs on both ends: mf on IDs alone, and the most complex variant (the
    judged model below: mf_autorec with side features, its ratings clipped to the training range)."""
    model, path, movies_and_users = request.getfixturevalue(request.param)[:3]
    return model, path, movies_and_users


def text(values):
    return [v.decode() for v in np.asarray(values).reshape(-1)]


def test_catalogue_titles_and_seen_lists(servable, transformed):
    _, _, movies_and_users = servable
    movie_ids = text(movies_and_users.movie_ids)
    # Most rated first: m1 (3 ratings) before m2 and m3 (2), m4 (1) last.
    assert [m for m in movie_ids if m in TITLES] in (["m1", "m2", "m3", "m4"], ["m1", "m3", "m2", "m4"])
    titles = dict(zip(movie_ids, text(movies_and_users.titles)))
    assert {m: titles[m] for m in TITLES} == TITLES
    seen = tf.RaggedTensor.from_row_splits(movies_and_users.seen_movies, movies_and_users.seen_row_splits)
    every = rated_in(transformed[0])
    assert sorted(text(movies_and_users.user_ids)) == sorted(every)
    for index, user in enumerate(text(movies_and_users.user_ids)):
        rated = {movie_ids[m] for m in seen[index].numpy()}
        assert rated == every[user]
        if user in RATED:
            assert rated == set(RATED[user])
    assert seen[len(movies_and_users.user_ids)].shape == (0,)  # OOV row is empty


def test_catalogue_side_features_become_category_tables(servable):
    _, _, movies_and_users = servable
    movie_index = {m: i for i, m in enumerate(text(movies_and_users.movie_ids))}
    user_index = {u: i for i, u in enumerate(text(movies_and_users.user_ids))}
    assert movies_and_users.years[movie_index["m1"]] == 1977
    assert movies_and_users.years[movie_index["m3"]] == features.UNKNOWN_INT
    assert movies_and_users.occupations[user_index["u2"]] == b"doctor"
    assert movies_and_users.genders[user_index["u4"]] == b""
    movies = side_features.movie_tables(movies_and_users)
    decades = movies.categories[:, 0]
    assert decades[movie_index["m2"]] == decades[movie_index["m4"]] != decades[movie_index["m1"]]
    assert decades[movie_index["m3"]] == 0 and decades[-1] == 0  # unknown year, OOV row
    users = side_features.user_tables(movies_and_users)
    assert users.categories.shape == (len(user_index) + 1, 3)  # and the OOV row
    assert users.field_sizes[1:] == (3, 3)  # F/M, doctor/writer + unknown
    writers = users.categories[[user_index["u1"], user_index["u3"]], 2]
    assert writers[0] == writers[1] != users.categories[user_index["u2"], 2]
    assert users.categories[user_index["u4"]].tolist() == [0, 0, 0]
    drama = [movie_index[m] for m in TITLES]
    np.testing.assert_allclose(movies.multi_hot[drama].sum(axis=1), 1.0)  # every one of them is a Drama


def test_predict_rating_matches_serving_default_and_flags_unknown(servable):
    model, _, _ = servable
    out = model.signatures["predict_rating"](user_id=tf.constant(["u1", "nobody", "u1"]),
                                             movie_id=tf.constant(["m3", "m3", "nothing"]))
    assert out["known_user"].numpy().tolist() == [True, False, True]
    assert out["known_movie"].numpy().tolist() == [True, True, False]
    example = tf.train.Example(features=tf.train.Features(feature={
        k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))
        for k, v in ((features.USER_ID, b"u1"), (features.MOVIE_ID, b"m3"))})).SerializeToString()
    served = model.signatures["serving_default"](examples=tf.constant([example]))[features.LABEL_KEY]
    regressed = model.signatures["regress"](inputs=tf.constant([example]))["outputs"]
    assert served.numpy()[0] == pytest.approx(out[features.LABEL_KEY].numpy()[0], abs=1e-5)
    assert regressed.numpy()[0] == pytest.approx(served.numpy()[0], abs=1e-6)


def test_no_serving_signature_initializes_a_table_on_a_call(servable):
    """Transform's layer initializes its tables inside its function, so each call re-reads the
    vocabulary files (~50 ms a request at 100k movies); serving looks IDs up in tables set up at load."""
    model, _, _ = servable
    for name, function in model.signatures.items():
        graph = function.graph.as_graph_def()
        ops = {node.op for node in graph.node} | {node.op for f in graph.library.function for node in f.node_def}
        initializers = {op for op in ops if op.startswith("InitializeTable")}
        assert name == "transform_features" or not initializers, (name, initializers)


def recommend(model, users, k, exclude_seen=False, exclude=None):
    """recommend as a client calls it: one k, exclude_seen and exclusion list per row."""
    ks = k if isinstance(k, list) else [k] * len(users)
    seen = exclude_seen if isinstance(exclude_seen, list) else [exclude_seen] * len(users)
    inputs = contract.recommend_inputs(users, ks, seen, exclude or [[] for _ in users])
    return model.signatures["recommend"](**{key: tf.constant(value) for key, value in inputs.items()})


def test_recommend_scores_match_predicted_ratings(servable):
    model, _, movies_and_users = servable
    catalogue = text(movies_and_users.movie_ids)
    out = recommend(model, ["u2"], len(catalogue))
    movies = text(out[features.MOVIE_ID])
    assert sorted(movies) == sorted(catalogue)
    titles = dict(zip(catalogue, text(movies_and_users.titles)))
    assert [titles[m] for m in movies] == text(out[features.TITLE])
    assert {m: t for m, t in zip(movies, text(out[features.TITLE])) if m in TITLES} == TITLES
    rated = model.signatures["predict_rating"](user_id=tf.constant(["u2"] * len(movies)), movie_id=tf.constant(movies))
    np.testing.assert_allclose(out["score"].numpy()[0], rated[features.LABEL_KEY].numpy(), rtol=1e-5)
    assert list(out["score"].numpy()[0]) == sorted(out["score"].numpy()[0], reverse=True)


def test_recommend_excludes_seen_and_listed_movies(servable):
    model, _, movies_and_users = servable
    catalogue = set(text(movies_and_users.movie_ids))
    out = recommend(model, ["u1", "u2"], len(catalogue), exclude_seen=True, exclude=[["m4"], []])
    scores = out["score"].numpy()
    kept = [[m for m, s in zip(row, score_row) if np.isfinite(s)]
            for row, score_row in zip(out[features.MOVIE_ID].numpy(), scores)]
    assert [sorted(m.decode() for m in row) for row in kept] == [
        sorted(catalogue - {"m1", "m2", "m4"}), sorted(catalogue - {"m2", "m3"})]


def test_recommend_exclude_seen_is_per_row(servable):
    model, _, movies_and_users = servable
    catalogue = set(text(movies_and_users.movie_ids))
    out = recommend(model, ["u1", "u1"], len(catalogue), exclude_seen=[True, False])
    finite = [[m for m, s in zip(row, scores) if np.isfinite(s)]
              for row, scores in zip(text_rows(out[features.MOVIE_ID]), out["score"].numpy())]
    assert sorted(finite[0]) == sorted(catalogue - {"m1", "m2"}) and sorted(finite[1]) == sorted(catalogue)


def text_rows(values):
    return [[v.decode() for v in row] for row in np.asarray(values)]


def assert_same_scores(merged, alone):
    """A row's scores from a merged batch equal its scores alone up to float32 rounding: the merged
    call multiplies a [B, d] matrix by the catalogue's, the lone call a [1, d] one, and the kernels
    may sum in another order (seen: 4.0651703 vs 4.065171). The IDs, compared exactly, are the answer."""
    np.testing.assert_allclose(merged, alone, rtol=8 * np.finfo(np.float32).eps)


def test_a_batch_with_mixed_k_pads_each_row_past_its_own_k(servable):
    """TF Serving's batching concatenates requests with different k into one batch
    (batching_session.cc `BatchingSession::MergeInputTensors`) and splits the outputs along
    dimension 0 only (`SplitOutputTensors`): each row is ranked to the batch's largest k, and a
    row's columns past its own k hold "" and -inf; its first k columns equal a call on its own."""
    model, _, _ = servable
    merged = recommend(model, ["u1", "u2", "u3"], [1, 3, 2])
    assert merged["score"].shape == (3, 3)
    ids, scores = text_rows(merged[features.MOVIE_ID]), merged["score"].numpy()
    for row, (user, k) in enumerate([("u1", 1), ("u2", 3), ("u3", 2)]):
        alone = recommend(model, [user], k)
        assert ids[row][:k] == text_rows(alone[features.MOVIE_ID])[0]
        assert_same_scores(scores[row][:k], alone["score"].numpy()[0])
        assert ids[row][k:] == [""] * (3 - k) and np.all(np.isneginf(scores[row][k:]))
        assert text_rows(merged[features.TITLE])[row][k:] == [""] * (3 - k)
    similar = model.signatures["similar_users"](user_id=tf.constant(["u1", "u2"]), k=tf.constant([1, 2]))
    assert text_rows(similar[features.USER_ID])[0][1] == "" and np.isneginf(similar["score"].numpy()[0][1])


def kept(out):
    """Each row's movies that are ranked (finite score), in rank order."""
    return [[m for m, score in zip(row, scores) if np.isfinite(score)]
            for row, scores in zip(text_rows(out[features.MOVIE_ID]), out["score"].numpy())]


def call_recommend(model, inputs):
    return model.signatures["recommend"](**{key: tf.constant(value, tf.string if key == contract.EXCLUDE_MOVIE_IDS
                                                             else None) for key, value in inputs.items()})


# exclude_movie_ids as clients send them: (rows, each row's set of movies to leave out).
NATURAL_EXCLUSIONS = [
    ([["m1", ""], ["m2", "m4"]], [{"m1"}, {"m2", "m4"}]),  # padded at the end, the usual way
    ([["", "m1", ""], ["", "m2", "m4"]], [{"m1"}, {"m2", "m4"}]),  # a leading "" (contract.exclusions)
    ([["m1", "", ""], ["m2", "", "m4"]], [{"m1"}, {"m2", "m4"}]),  # "" anywhere is no movie
    ([["m9", "m1"], ["", ""]], [{"m1"}, set()]),  # an unknown ID excludes nothing
    (np.zeros([2, 0], object), [set(), set()]),  # no column at all
    ([["m1"]], [{"m1"}]),  # a single row
    ([["m1", "m3", "m1"]], [{"m1", "m3"}]),  # an ID twice
]


@pytest.mark.parametrize("rows,excluded", NATURAL_EXCLUSIONS, ids=[
    "padded-at-the-end", "leading-empty", "empty-anywhere", "unknown-id", "zero-width", "single-row", "repeated"])
def test_exclusions_sent_the_natural_way_give_each_row_its_answer(servable, rows, excluded):
    """Each row's non-empty cells are the movies it leaves out, whatever the width and wherever the
    "" padding is. Referee: the row's user's ranking without exclusions, with those movies taken out."""
    model, _, movies_and_users = servable
    users, k = ["u2", "u3"][:len(excluded)], len(movies_and_users.movie_ids)
    full = kept(recommend(model, users, k))
    out = call_recommend(model, {**contract.recommend_inputs(users, [k] * len(users), [False] * len(users),
                                                             [[] for _ in users]),
                                 contract.EXCLUDE_MOVIE_IDS: np.array(rows, dtype=object)})
    assert kept(out) == [[m for m in ranking if m not in leave_out] for ranking, leave_out in zip(full, excluded)]


def test_every_signature_input_is_batch_major(servable):
    """TF Serving's batching refuses a rank-0 input on every Run() (batching/batching_util.h
    `ComputeTensorBatchSize`: "Batching Run() input tensors must have at least one dimension"):
    every input of every signature has the batch dimension first."""
    _, path, _ = servable
    signature_defs = loader_impl.parse_saved_model(path).meta_graphs[0].signature_def
    for name, signature_def in signature_defs.items():
        for key, tensor_info in signature_def.inputs.items():
            shape = tensor_info.tensor_shape
            assert not shape.unknown_rank and shape.dim and shape.dim[0].size == -1, (name, key)


def test_recommend_metadata_describes_the_exclusions(servable):
    """GetModelMetadata sends the SignatureDef: exclude_movie_ids is a string matrix of any width,
    one row per user (the whole contract: any width is read, "" is no movie)."""
    _, path, _ = servable
    tensor_info = loader_impl.parse_saved_model(path).meta_graphs[0].signature_def["recommend"].inputs[
        contract.EXCLUDE_MOVIE_IDS]
    assert tf.dtypes.as_dtype(tensor_info.dtype) == tf.string
    assert [d.size for d in tensor_info.tensor_shape.dim] == [-1, -1]


def test_unknown_user_gets_the_same_bias_ranking_as_any_unknown_user(servable):
    model, _, _ = servable
    out = recommend(model, ["stranger", "someone-else"], 3)
    assert out["known_user"].numpy().tolist() == [False, False]
    assert text(out[features.MOVIE_ID])[:3] == text(out[features.MOVIE_ID])[3:]


def test_similar_movies_by_id_or_title(servable):
    model, _, movies_and_users = servable
    size = len(movies_and_users.movie_ids)
    out = model.signatures["similar_movies"](movie=tf.constant(["m3", "ALPHA", "unheard of"]),
                                             k=tf.constant([size + 10] * 3))
    assert out["found"].numpy().tolist() == [True, True, False]
    # "alpha" is the title of m1 and m4; m1 has more ratings, so the title means m1.
    assert text(out["query_movie_id"]) == ["m3", "m1", ""]
    ids = out[features.MOVIE_ID].numpy()
    assert ids.shape == (3, size - 1)  # k is capped at the catalogue size minus the movie itself
    assert b"m3" not in ids[0] and b"m1" not in ids[1]
    assert text(ids[2]) == [""] * (size - 1) and out["score"].numpy()[2].tolist() == [0] * (size - 1)
    assert np.all(np.abs(out["score"].numpy()[:2]) <= 1.0 + 1e-6)
    # "Title (year)", as MovieLens writes it, picks the film of that year.
    dated = model.signatures["similar_movies"](movie=tf.constant(["Alpha (1995)", "alpha (1977)"]), k=tf.constant([1, 1]))
    assert text(dated["query_movie_id"]) == ["m4", "m1"]


def test_similar_users_and_bad_k(servable):
    model, _, _ = servable
    out = model.signatures["similar_users"](user_id=tf.constant(["u1", "nobody"]), k=tf.constant([2, 2]))
    assert out["known_user"].numpy().tolist() == [True, False]
    assert "u1" not in text(out[features.USER_ID][0]) and text(out[features.USER_ID][1]) == ["", ""]
    with pytest.raises(tf.errors.InvalidArgumentError, match="k must be at least 1"):
        model.signatures["similar_users"](user_id=tf.constant(["u1"]), k=tf.constant([0]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="k needs one value per row"):
        model.signatures["similar_users"](user_id=tf.constant(["u1", "u2"]), k=tf.constant([1]))


def test_signature_methods_and_warmup_file(servable):
    model, path, _ = servable
    signature_defs = loader_impl.parse_saved_model(path).meta_graphs[0].signature_def
    assert signature_defs["regress"].method_name == "tensorflow/serving/regress"
    assert signature_defs["recommend"].method_name == "tensorflow/serving/predict"
    from serving.model_server.server import warmup_records
    logs = warmup_records(path)
    assert {log.predict_log.request.model_spec.signature_name for log in logs} == {
        "serving_default", "regress", "predict_rating", "recommend", "similar_movies", "similar_users"}
    for log in logs:
        request = log.predict_log.request
        inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
        assert model.signatures[request.model_spec.signature_name](**inputs)


def merge_as_tf_serving(tasks, allowed_batch_sizes):
    """Concurrent requests merged as TF Serving 2.16.1's batching session merges them
    (batching/batching_session.cc `BatchingSession::MergeInputTensors` with
    pad_variable_length_inputs): each task's tensor is padded on every dimension but the 0th to
    the batch's largest size with *its own first element* (batching_util.cc `PadTensor`), tasks
    are concatenated along dimension 0, and the batch is padded up to the next allowed batch size
    with copies of the last task's first row (batching_util.cc `RoundToLowestAllowedBatchSize`: no
    allowed size, or none large enough, leaves the batch as it is)."""
    merged = {}
    for key in tasks[0]:
        tensors = [np.asarray(task[key]) for task in tasks]
        widest = np.max([t.shape for t in tensors], axis=0)
        padded = [np.pad(t, [(0, 0)] + [(0, w - s) for w, s in zip(widest[1:], t.shape[1:])],
                         constant_values=t.flat[0]) for t in tensors]
        rows = sum(len(t) for t in padded)
        size = next((s for s in allowed_batch_sizes if s >= rows), rows)
        merged[key] = np.concatenate(padded + [padded[-1][:1]] * (size - rows))
    return merged, [len(np.asarray(task["user_id"])) for task in tasks]


def natural(users, ks, exclude_seen, rows):
    """recommend inputs as a client without the contract module writes them: exclusion rows padded
    at the end with "" to the longest (no leading empty column)."""
    inputs = contract.recommend_inputs(users, ks, exclude_seen, [[] for _ in users])
    width = max(len(row) for row in rows)
    inputs[contract.EXCLUDE_MOVIE_IDS] = np.array([list(row) + [""] * (width - len(row)) for row in rows], object)
    return inputs


# Requests with different k, exclude_seen and exclusion widths, as clients send them: the contract
# module's rows (leading ""), and natural rows: one-row requests of any width, and a request of
# several rows whose first cell is "" (its first row excludes nothing).
MERGED_TASKS = [
    contract.recommend_inputs(["u1"], [1], [True], [["m3"]]),
    contract.recommend_inputs(["u2", "u3"], [3, 2], [False, True], [[], ["m2", "m4", "m9"]]),
    natural(["u2"], [2], [False], [["m1"]]),
    natural(["u3"], [4], [False], [["m2", "m3", "m1"]]),
    natural(["u4", "u1"], [3, 4], [False, False], [[], ["m1", "m4"]]),
    contract.recommend_inputs(["nobody"], [4], [False], [[]]),
]


def test_concurrent_recommend_calls_merged_by_batching_get_their_own_answers(servable):
    """Requests merged into one batch and padded as TF Serving does (merge_as_tf_serving) answer
    each client's rows exactly as a call on its own: same IDs, the scores up to float32 rounding."""
    model, _, _ = servable
    merged, sizes = merge_as_tf_serving(MERGED_TASKS, [1, 2, 4, 16])
    assert len(merged["user_id"]) == 16 and merged[contract.EXCLUDE_MOVIE_IDS].shape[1] == 4
    out = call_recommend(model, merged)
    start = 0
    for task, size in zip(MERGED_TASKS, sizes):
        alone = call_recommend(model, task)
        for row in range(size):
            k = task["k"][row]
            mine = [contract.top_columns(out[key].numpy()[start + row], k) for key in ("movie_id", "score")]
            assert mine[0].tolist() == contract.top_columns(alone["movie_id"].numpy()[row], k).tolist()
            assert_same_scores(mine[1], contract.top_columns(alone["score"].numpy()[row], k))
        start += size


def test_the_stand_in_merges_as_tf_serving_merges():
    """serving/model_server/batching.py, checked against the transcription of batching_session.cc above: the
    batch `movierec serve` runs for concurrent requests is the one TF Serving would run."""
    import itertools
    import threading
    from serving.model_server import batching

    batches = []
    # The batch never times out: it runs when the queue stops, with every task in it (a stopping
    # queue runs what it holds), so all six are merged however slowly their threads start.
    queue = batching.Queue(batching.Options(max_batch_size=16, batch_timeout_s=600.0, allowed_batch_sizes=(1, 2, 4, 16),
                                            pad_variable_length_inputs=True),
                           lambda inputs, timeout_ms: batches.append(inputs) or {"rows": np.zeros(len(inputs["user_id"]))},
                           "recommend")
    threads = [threading.Thread(target=queue.run, args=({k: np.asarray(v) for k, v in task.items()},))
               for task in MERGED_TASKS]
    for thread in threads:
        thread.start()

    def queued_rows():
        with queue._condition:  # the queue's own lock: its threads append to the deque under it
            return sum(batch.size for batch in queue._batches)

    deadline = time.monotonic() + 30
    while queued_rows() < 8 and time.monotonic() < deadline:
        time.sleep(0.001)
    queue.stop()
    for thread in threads:
        thread.join()
    (batch,) = batches
    assert any(all(np.array_equal(batch[key], expected[key]) for key in expected)
               for expected in (merge_as_tf_serving(order, [1, 2, 4, 16])[0]
                                for order in itertools.permutations(MERGED_TASKS)))


def test_a_batch_cannot_tell_padding_from_an_id_in_a_later_row():
    """Why several-row requests keep their first cell empty: TF Serving pads a request with its
    first element, so a two-row request whose first cell is m1, merged with a wider request, gives
    the very batch that a one-row request [m1, ""] and a one-row request that excludes m1 give; row 1
    must exclude m1 in the second case and not in the first. No model can answer both."""
    wider = natural(["u4"], [2], [False], [["m2", "m3", "m4"]])
    two_rows = natural(["u1", "u2"], [2, 2], [False, False], [["m1"], ["m2", "m3"]])
    one_row, another = natural(["u1"], [2], [False], [["m1", ""]]), natural(["u2"], [2], [False], [["m2", "m3", "m1"]])
    first, _ = merge_as_tf_serving([two_rows, wider], [])
    second, _ = merge_as_tf_serving([one_row, another, wider], [])
    assert all(np.array_equal(first[key], second[key]) for key in first)
    assert first[contract.EXCLUDE_MOVIE_IDS][1].tolist() == ["m2", "m3", "m1"]


# --- The servable that is pushed (models/servable.py), against the judged model it is rebuilt from:
# the rating weights answer exactly as judged, and recommend knows every rating given to it (users
# the rating model does not know included), its head refitted on them. Referees: the judged
# SavedModel's own answers, and the history head fitted in numpy on the pairs the test hands over.

# What the pipeline accepted beyond the judged model's training ratings: u1's eval-split m3, a user
# the rating model never saw (an eval-only user, or an older span's), and a movie outside the
# catalogue, which recommend can never list.
MORE = {"u1": ["m3"], "u9": ["m2", "m4", "m-elsewhere"]}
HPARAMS = Hyperparameters(model="mf_autorec", side_features=True, embedding_dim=4, learning_rate=0.05, l2=0.0,
                          epochs=20, batch_size=32, autorec_hidden=4, autorec_epochs=2, retrieval_dim=2,
                          retrieval_l2=1.0)


@pytest.fixture(scope="module")
def judged(transformed, tmp_path_factory):
    """(judged SavedModel, its path, its catalogue, the folder holding it and catalog.npz): the
    rating model the most complex variant, mf_autorec with side features."""
    tmp = tmp_path_factory.mktemp("servable")
    output = transformed[2]
    movies_and_users, batch = catalogue_batch(*transformed)
    training_range = (float(movies_and_users.seen_ratings.min()), float(movies_and_users.seen_ratings.max()))
    model = model_lib.build_model(movies_and_users.num_users, movies_and_users.num_movies, 3.0, HPARAMS,
                                  rating_range=training_range, **side_features.tables(movies_and_users),
                                  training_steps=model_lib.training_steps(len(batch[RATING_XF]), HPARAMS))
    model.fit({k: batch[k] for k in (catalog.USER_XF, catalog.MOVIE_XF)}, batch[RATING_XF].reshape(-1),
              epochs=HPARAMS.epochs, batch_size=HPARAMS.batch_size, verbose=0)
    table = autorec.fit_table(movies_and_users.seen_users(), movies_and_users.seen_movies,
                              movies_and_users.seen_ratings, movies_and_users.num_users,
                              movies_and_users.num_movies, HPARAMS)
    model = model_lib.with_autorec(model, table, HPARAMS.blend_weight)
    export.save(model, output, movies_and_users, str(tmp / "judged"))
    catalog.save(movies_and_users, str(tmp / "catalog.npz"))
    return tf.saved_model.load(str(tmp / "judged")), str(tmp / "judged"), movies_and_users, tmp


@pytest.fixture(scope="module")
def judged_and_pushed(transformed, judged):
    """(judged SavedModel, pushed SavedModel (models/servable.py), the judged catalogue, {user: every
    movie given})."""
    judged_model, judged_path, movies_and_users, tmp = judged
    every = {user: RATED.get(user, []) + MORE.get(user, []) for user in {*RATED, *MORE}}
    users = sorted(every)
    index = {m: i for i, m in enumerate(text(movies_and_users.movie_ids))}
    pairs = [(users.index(u), index.get(m, -1)) for u in users for m in every[u]]
    rows, movies = np.array(pairs).T
    seen = seen_lib.from_pairs(rows, np.array([u.encode() for u in users], dtype=object), movies)
    known = movies >= 0
    accepted = Ratings(rows[known], movies[known], np.zeros(known.sum(), np.int64))
    export_servable(judged_path, str(tmp / "catalog.npz"), transformed[2], HPARAMS, seen, accepted,
                    str(tmp / "pushed"))
    return judged_model, tf.saved_model.load(str(tmp / "pushed")), movies_and_users, every


def test_the_catalogue_file_reads_back_without_its_ratings(judged_and_pushed, transformed, tmp_path):
    _, _, movies_and_users, _ = judged_and_pushed
    catalog.save(movies_and_users, str(tmp_path / "catalog.npz"))
    loaded, stats = catalog.load(str(tmp_path / "catalog.npz"))
    for name in ("user_ids", "movie_ids", "titles", "genres", "years", "ages", "genders", "occupations"):
        assert list(getattr(loaded, name)) == list(getattr(movies_and_users, name)), name
    ratings = movies_and_users.seen_ratings
    raw = [row[features.RATING][0] for row in transformed[0]]
    assert (min(raw), max(raw)) == (1.0, 5.0)  # test_preprocessing's 1.0 (its newer rating) and 5.0 stay seen
    assert stats == {"count": len(ratings), "mean": pytest.approx(ratings.mean()), "min": 1.0, "max": 5.0}
    assert loaded.seen_movies.size == 0


def test_ratings_and_similar_movies_answer_exactly_as_judged(judged_and_pushed):
    judged, pushed, movies_and_users, _ = judged_and_pushed
    users = text(movies_and_users.user_ids) + ["u9", "nobody"]
    movies = text(movies_and_users.movie_ids) + ["m-elsewhere"]
    pairs = [(u, m) for u in users for m in movies]
    inputs = {"user_id": tf.constant([u for u, _ in pairs]), "movie_id": tf.constant([m for _, m in pairs])}
    rate = lambda servable: servable.signatures[contract.PREDICT_RATING](**inputs)[features.LABEL_KEY].numpy()
    np.testing.assert_array_equal(rate(pushed), rate(judged))
    similar = lambda servable: servable.signatures[contract.SIMILAR_MOVIES](
        movie=tf.constant(movies), k=tf.constant([3] * len(movies)))[contract.SCORE].numpy()
    np.testing.assert_array_equal(similar(pushed), similar(judged))


def test_recommend_knows_every_rating_given(judged_and_pushed):
    """u1's eval-split m3 and u9's movies are excluded; u9 (unknown to the rating model) is known
    to recommend and ranked from their history; the judged model knows the training ratings only."""
    judged, pushed, movies_and_users, every = judged_and_pushed
    catalogue = set(text(movies_and_users.movie_ids))
    lists = full_lists(pushed, sorted(every))
    assert lists == {user: catalogue - set(movies) for user, movies in every.items()}
    assert full_lists(judged, ["u1", "u9"]) == {"u1": catalogue - set(RATED["u1"]), "u9": catalogue}
    _, _, known = served_recommend(pushed, ["u9", "nobody"], 1)
    assert known.tolist() == [True, False]
    _, _, known = served_recommend(judged, ["u9"], 1)
    assert known.tolist() == [False]


def test_the_head_is_refitted_on_every_rating_given(judged_and_pushed):
    _, pushed, movies_and_users, every = judged_and_pushed
    index = {m: i for i, m in enumerate(text(movies_and_users.movie_ids))}
    users = sorted(every)
    pairs = [(users.index(u), index[m]) for u in users for m in every[u] if m in index]
    rows, movies = np.array(pairs).T
    tables = history_head.fit(rows, movies, len(index), HPARAMS.retrieval_l2, HPARAMS.retrieval_dim,
                           HPARAMS.retrieval_popularity_l2, HPARAMS.retrieval_popularity_weight)
    for user in ("u1", "u9"):
        seen = movies[rows == users.index(user)]
        vector = tables.history[seen].sum(axis=0)
        vector[-1] = tables.popularity_weight
        expected = tables.candidates @ vector
        ids, scores, _ = served_recommend(pushed, [user], len(index), exclude_seen=False)
        got = dict(zip(text(ids[0]), scores[0]))
        np.testing.assert_allclose([got[m] for m in index], expected, rtol=1e-4, atol=1e-5)


def test_seen_tables_from_pairs_count_each_pair_once_and_keep_catalogue_movies():
    seen = seen_lib.from_pairs(np.array([1, 0, 1, 1, 0, 2]), np.array([b"b", b"a", b"c"], dtype=object),
                               np.array([3, 5, 3, 0, -1, -1]))
    assert seen.user_ids.tolist() == [b"a", b"b"]  # c rated only movies outside the catalogue
    assert seen.row_splits.tolist() == [0, 2, 3, 3]  # and the unknown users' empty row
    assert seen.movies.tolist() == [0, 3, 5] and seen.movies.dtype == np.int32
    assert seen.of_user(b"a").tolist() == [0, 3] and seen.of_user(b"c").size == 0
