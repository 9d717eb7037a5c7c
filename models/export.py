"""The exported SavedModel: one servable for ratings, top-K recommendations and similar items.

Every signature takes raw string IDs (or serialized tf.Examples) and maps them to indices with
Transform's vocabularies, so clients never see vocabulary indices. Only stock TF ops are used: the
model loads in the standard tensorflow/serving image. What no request changes (the ID tables, the
vectors of the whole catalogue) is set up at export or load, not per request. Unknown IDs never
fail: they map to the OOV index, whose vectors are zeros, and each response says whether the ID
was known. Every input is batch-major with one batch size B, so TF Serving's batching can merge
requests (serving/contract.py says why and what that means for k and exclusions).

Signatures (inputs -> outputs):
- serving_default:    examples [B] (serialized tf.Example with user_id, movie_id) -> rating [B]
- regress:            inputs [B] (same tf.Examples) -> outputs [B]; TF Serving's Regress API
- transform_features: examples [B] -> transformed features (used by TFMA)
- predict_rating:     user_id [B], movie_id [B] -> rating, known_user, known_movie [B]
- recommend:          user_id [B], k [B], exclude_seen [B], exclude_movie_ids [B, E] (E >= 0: row
                      i's non-empty cells are the movies row i leaves out; "" is no movie)
                      -> movie_id, title, score [B, K]; known_user [B]
                      score: the predicted rating, or with a retrieval head (retrieval/history_head.py) its
                      ranking score, comparable within a user's list only; exclude_seen and the
                      head's history read the seen tables (seen.py: the variables seen_user_ids,
                      seen_row_splits, seen_movies); known_user: the user has a row there or is
                      known to the rating model
- similar_movies:     movie [B] (an ID, or a title, case-insensitive), k [B]
                      -> movie_id, title, score [B, K]; query_movie_id, query_title, found [B]
- similar_users:      user_id [B], k [B] -> user_id, score [B, K]; known_user [B]
K is the batch's largest k (capped at the catalogue); a row past its own k holds "" and -inf.
"""
import functools
import os
from typing import Optional

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
from tf_keras.src.saving.legacy.saved_model import utils as keras_saved_model

from models import seen as seen_lib
from models.rating import model as model_lib, scoring
from models.retrieval import lists
from models.retrieval import history_head
from models.catalog import Catalog
from models.features import MOVIE_XF, USER_XF
from ratings import features
from serving import contract
from serving.contract import (EXCLUDE_MOVIE_IDS, EXCLUDE_SEEN, FOUND, K, KNOWN_MOVIE, KNOWN_USER, MOVIE,
                              MOVIE_ID, QUERY_MOVIE_ID, QUERY_TITLE, RATING, SCORE, TITLE, USER_ID)

UNKNOWN_ID = "warmup-unknown-id"

# The signatures are traced without AutoGraph: none branches or loops on a tensor in Python, and
# converting them (with the Transform layer's and Keras' code they call) was ~1.3 CPU-s of each
# export's ~2.7. A tensor-dependent `if` added later fails at export, not silently.
_signature = functools.partial(tf.function, autograph=False)

_EXAMPLES = tf.TensorSpec([None], tf.string, name=contract.EXAMPLES)
_IDS = tf.TensorSpec([None], tf.string)
_K = tf.TensorSpec([None], tf.int32, name=K)


def title_index(catalog: Catalog):
    """(lower-cased titles, movie indices): each title once, for its most-rated movie.

    Titles repeat (two films called "Cape Fear"); vocabulary order is by rating count, so the
    first index seen for a title is the best-known film. "Title (year)", as MovieLens writes
    titles, finds the film of that year.
    """
    years = catalog.years if catalog.years is not None else [features.UNKNOWN_INT] * catalog.num_movies
    index = {}
    for position, (title, year) in enumerate(zip(catalog.titles, years)):
        key = title.decode("utf-8").lower()
        if key:
            index.setdefault(key.encode("utf-8"), position)
            if year != features.UNKNOWN_INT:
                index.setdefault(f"{key} ({year})".encode("utf-8"), position)
    return list(index) or [b""], list(index.values()) or [-1]


def index_table(ids: np.ndarray) -> tf.lookup.StaticHashTable:
    """Raw ID -> vocabulary index (OOV -> vocabulary size), as Transform maps IDs, but initialized
    once when the model loads: Transform's tables are initialized inside its function, so calling
    its layer re-reads the vocabulary files every time (~5 ms an ID feature at 20k-100k IDs)."""
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(ids.astype(bytes), tf.string),
                                            tf.range(len(ids), dtype=tf.int64)),
        default_value=len(ids))


class RecommenderModule(tf.Module):
    """The Keras model, the Transform layer and the catalogue, with the serving functions."""

    def __init__(self, model: tf.keras.Model, tf_transform_output: tft.TFTransformOutput,
                 catalog: Catalog, retrieval_tables: Optional[history_head.Tables] = None,
                 seen: Optional[seen_lib.Seen] = None):
        """`retrieval_tables`: `recommend` ranks with that head; None ranks by predicted rating.
        `seen`: what `recommend` knows each user rated (seen.py); None: the catalogue's training
        ratings, as the model the gates judge has them."""
        super().__init__()
        self.model = model
        self.tft_layer = tf_transform_output.transform_features_layer()
        self._raw_feature_spec = tf_transform_output.raw_feature_spec()
        self._num_users, self._num_movies = catalog.num_users, catalog.num_movies
        self._user_ids = tf.constant(catalog.user_ids.astype(bytes), tf.string)
        self._movie_ids = tf.constant(catalog.movie_ids.astype(bytes), tf.string)
        self._titles = tf.constant(catalog.titles.astype(bytes), tf.string)
        # What the next run warm-starts from (see warm_start.py): the tables and their IDs.
        self.user_ids = tf.Variable(self._user_ids, trainable=False, name="user_ids")
        self.movie_ids = tf.Variable(self._movie_ids, trainable=False, name="movie_ids")
        self.warm_start_tables = {
            name: model.get_layer(name).embeddings for name in (
                model_lib.USER_EMBEDDING, model_lib.USER_BIAS, model_lib.MOVIE_EMBEDDING, model_lib.MOVIE_BIAS)}
        self.warm_start_tables[model_lib.GLOBAL_MEAN] = model.get_layer(model_lib.GLOBAL_MEAN).bias
        self._index_tables = {features.USER_ID: index_table(catalog.user_ids),
                              features.MOVIE_ID: index_table(catalog.movie_ids)}
        # With side features each is a pass over the whole catalogue (~20 ms at 100k movies).
        self._movie_vectors = tf.Variable(scoring.movie_vectors(model), trainable=False, name="movie_vectors")
        self._unit_movie_vectors = tf.Variable(tf.math.l2_normalize(self._movie_vectors, axis=1),
                                               trainable=False, name="unit_movie_vectors")
        self._unit_user_vectors = tf.Variable(tf.math.l2_normalize(scoring.user_vectors(model), axis=1),
                                              trainable=False, name="unit_user_vectors")
        # The seen tables (seen.py), keyed by user ID on their own: the servable that is pushed
        # holds users the rating model's vocabulary does not (eval-only users, older spans').
        seen = seen_lib.from_catalog(catalog) if seen is None else seen
        self._seen_users = index_table(seen.user_ids)
        self._num_seen_users = seen.num_users
        self.seen_user_ids = tf.Variable(seen.user_ids.astype(bytes), trainable=False, name="seen_user_ids")
        self.seen_movies = tf.Variable(seen.movies, trainable=False, name="seen_movies")
        self.seen_row_splits = tf.Variable(seen.row_splits, trainable=False, name="seen_row_splits")
        self._retrieval = None if retrieval_tables is None else (
            tf.Variable(retrieval_tables.history, trainable=False, name="retrieval_history"),
            tf.Variable(retrieval_tables.candidates, trainable=False, name="retrieval_candidates"),
            tf.constant(retrieval_tables.weights, tf.float32))
        titles, indices = title_index(catalog)
        self._title_index = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(titles, tf.string),
                                                tf.constant(indices, tf.int64)),
            default_value=-1)

    # --- ID handling ------------------------------------------------------------------------

    def _index(self, key: str, ids: tf.Tensor) -> tf.Tensor:
        """Vocabulary indices of raw IDs of feature `key`, any shape; OOV -> vocabulary size."""
        return self._index_tables[key].lookup(ids)

    def _rate(self, user_index: tf.Tensor, movie_index: tf.Tensor) -> tf.Tensor:
        return self.model({USER_XF: user_index[:, tf.newaxis], MOVIE_XF: movie_index[:, tf.newaxis]})

    # --- signatures -----------------------------------------------------------------------------

    @_signature(input_signature=[_EXAMPLES])
    def serve_tf_examples(self, examples):
        spec = {key: self._raw_feature_spec[key] for key in features.ID_FEATURES}
        raw = tf.io.parse_example(examples, spec)
        return {RATING: self._rate(self._index(USER_ID, raw[USER_ID][:, 0]),
                                   self._index(MOVIE_ID, raw[MOVIE_ID][:, 0]))}

    @_signature(input_signature=[tf.TensorSpec([None], tf.string, name=contract.INPUTS)])
    def regress(self, inputs):
        return {contract.OUTPUTS: self.serve_tf_examples(inputs)[RATING]}

    @_signature(input_signature=[_EXAMPLES])
    def transform_features(self, examples):
        return self.tft_layer(tf.io.parse_example(examples, self._raw_feature_spec))

    @_signature(input_signature=[_IDS, _IDS])
    def predict_rating(self, user_id, movie_id):
        user_index = self._index(features.USER_ID, user_id)
        movie_index = self._index(features.MOVIE_ID, movie_id)
        return {RATING: self._rate(user_index, movie_index),
                KNOWN_USER: user_index < self._num_users,
                KNOWN_MOVIE: movie_index < self._num_movies}

    @_signature(input_signature=[_IDS, _K, tf.TensorSpec([None], tf.bool, name=EXCLUDE_SEEN),
                                 tf.TensorSpec([None, None], tf.string, name=EXCLUDE_MOVIE_IDS)])
    def recommend(self, user_id, k, exclude_seen, exclude_movie_ids):
        user_index = self._index(features.USER_ID, user_id)
        seen_row = self._seen_users.lookup(user_id)
        seen = tf.RaggedTensor.from_row_splits(self.seen_movies, self.seen_row_splits)
        seen_for_users = tf.gather(seen, seen_row)
        if self._retrieval is None:
            scores = scoring.score_all_movies(self.model, user_index, self._movie_vectors)
        else:
            scores = history_head.catalogue_scores(*self._retrieval, seen_for_users)
        batch = tf.shape(user_id)[0]
        tf.debugging.Assert(
            (tf.shape(exclude_seen)[0] == batch) & (tf.shape(exclude_movie_ids)[0] == batch),
            ["exclude_seen and exclude_movie_ids need one row per user_id"])
        # Every cell of a row is read, whatever the width and wherever the padding: "" (NO_MOVIE)
        # and unknown IDs map to the OOV index, which excludes nothing (serving/contract.py says
        # what TF Serving's batching does to this input and why the cells are read this way).
        excluded = self._index(features.MOVIE_ID, exclude_movie_ids)
        rows = tf.repeat(tf.range(tf.shape(excluded, tf.int64)[0]), tf.shape(excluded, tf.int64)[1])
        cells = tf.stack([rows, tf.reshape(excluded, [-1])], axis=1)
        seen_cells = tf.stack([seen_for_users.value_rowids(), tf.cast(seen_for_users.flat_values, tf.int64)], axis=1)
        seen_cells = tf.boolean_mask(seen_cells, tf.gather(exclude_seen, seen_for_users.value_rowids()))
        values, indices, in_k = lists.top_k_excluding(scores, k, tf.concat([cells, seen_cells], 0),
                                                        self._num_movies)
        return {MOVIE_ID: lists.ranked(self._movie_ids, indices, in_k),
                TITLE: lists.ranked(self._titles, indices, in_k),
                SCORE: values,
                # Known: rated something the servable holds, or known to the rating model.
                KNOWN_USER: (user_index < self._num_users) | (seen_row < self._num_seen_users)}

    @_signature(input_signature=[tf.TensorSpec([None], tf.string, name=MOVIE), _K])
    def similar_movies(self, movie, k):
        by_id = self._index(features.MOVIE_ID, movie)
        by_title = self._title_index.lookup(tf.strings.lower(tf.strings.strip(movie), encoding="utf-8"))
        query = tf.where((by_id >= self._num_movies) & (by_title >= 0), by_title, by_id)
        values, indices, in_k, found = lists.nearest(self._unit_movie_vectors, query, k)
        movie_ids, scores = lists.only_known(found, lists.ranked(self._movie_ids, indices, in_k), values)
        titles, _ = lists.only_known(found, lists.ranked(self._titles, indices, in_k), values)
        safe = tf.where(found, query, tf.zeros_like(query))
        return {MOVIE_ID: movie_ids,
                TITLE: titles,
                SCORE: scores,
                QUERY_MOVIE_ID: tf.where(found, tf.gather(self._movie_ids, safe), ""),
                QUERY_TITLE: tf.where(found, tf.gather(self._titles, safe), ""),
                FOUND: found}

    @_signature(input_signature=[_IDS, _K])
    def similar_users(self, user_id, k):
        values, indices, in_k, known = lists.nearest(self._unit_user_vectors, self._index(USER_ID, user_id), k)
        user_ids, scores = lists.only_known(known, lists.ranked(self._user_ids, indices, in_k), values)
        return {USER_ID: user_ids, SCORE: scores, KNOWN_USER: known}

    def signatures(self):
        functions = (self.serve_tf_examples, self.regress, self.transform_features,
                     self.predict_rating, self.recommend, self.similar_movies, self.similar_users)
        names = (contract.SERVING_DEFAULT, contract.REGRESS, contract.TRANSFORM_FEATURES,
                 contract.PREDICT_RATING, contract.RECOMMEND, contract.SIMILAR_MOVIES, contract.SIMILAR_USERS)
        return dict(zip(names, functions))


def mark_regression_signature(export_dir: str, name: str = contract.REGRESS) -> None:
    """Sets the `regress` signature's method to TF Serving's Regress API.

    TF2's saver marks every signature as a Predict signature; TF Serving's Regress endpoint only
    accepts signatures whose method_name is tensorflow/serving/regress.
    """
    path = os.path.join(export_dir, "saved_model.pb")
    saved_model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(path, "rb") as f:
        saved_model.ParseFromString(f.read())
    for meta_graph in saved_model.meta_graphs:
        meta_graph.signature_def[name].method_name = contract.REGRESS_METHOD
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(saved_model.SerializeToString())


def warmup_requests(catalog: Catalog):
    """(signature, inputs) pairs covering every client signature, with a known and an unknown
    user, two ks (as a merged batch has) and exclusions."""
    user = catalog.user_ids[0].decode() if catalog.num_users else UNKNOWN_ID
    movie = catalog.movie_ids[0].decode() if catalog.num_movies else UNKNOWN_ID
    return contract.signature_inputs([user, UNKNOWN_ID], [movie, movie], [10, 3])


def write_warmup(export_dir: str, catalog: Catalog) -> None:
    """Writes assets.extra/tf_serving_warmup_requests: TF Serving replays it before serving."""
    path = os.path.join(export_dir, contract.WARMUP_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        for signature, inputs in warmup_requests(catalog):
            # TF Serving runs warmup requests against the version being loaded, whatever name.
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(signature_name=signature))
            for key, value in inputs.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def save(model: tf.keras.Model, tf_transform_output: tft.TFTransformOutput, catalog: Catalog,
         export_dir: str, retrieval_tables: Optional[history_head.Tables] = None,
         seen: Optional[seen_lib.Seen] = None) -> None:
    """Saves the servable SavedModel with all signatures and its warmup requests."""
    module = RecommenderModule(model, tf_transform_output, catalog, retrieval_tables, seen)
    # Without Keras' own traces of the model and each layer: they serve only tf.keras.models.load_model,
    # which nothing does (TF Serving and every reader call the module's signatures, warm start reads its
    # variables, servable.py restores the weights by checkpoint; TFMA's model-type probe falls back to a
    # generic model either way). They cost a save ~0.7 CPU-s and each load ~0.7 (tiny test models).
    with keras_saved_model.keras_option_scope(save_traces=False):
        tf.saved_model.save(module, export_dir, signatures=module.signatures())
    mark_regression_signature(export_dir)
    write_warmup(export_dir, catalog)
