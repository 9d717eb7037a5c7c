"""The serving contract: what a request to each signature looks like, shared by the export (its
warmup file), the client library, the load generator and infra validation (its canary requests).

Every input of every signature is batch-major with one batch size B, because that is the only
shape TF Serving's batching accepts (tensorflow/serving 2.16.1):
- `batching/batching_util.h` `ComputeTensorBatchSize`: a rank-0 input fails every Run() with
  "Batching Run() input tensors must have at least one dimension", and inputs whose 0th
  dimensions differ fail with "Batching Run() input tensors must have equal 0th-dimension size".
  So `k` and `exclude_seen` are [B], one value per row.
- `batching/batching_session.cc` `BatchingSession::MergeInputTensors`: requests from different
  clients are concatenated along dimension 0 into one batch, and the outputs are cut back along
  dimension 0 (`SplitOutputTensors`). A merged batch can therefore mix k values: the model ranks
  to the largest k of the batch and pads each row past its own k with "" (IDs, titles) and
  -inf (scores). A client gets [B, K] with K >= its largest k and keeps its first k columns
  (`top_columns`). Refusing mixed k would fail requests that are valid on their own.
- The same function, with `pad_variable_length_inputs`, pads every variable dimension (here
  `exclude_movie_ids`' E) to the batch's widest with the request tensor's *first element*
  (`batching_util.cc` `PadTensor`: `pad_value(input.flat<T>()(0))`), and refuses a zero-width
  tensor in a batch of non-empty ones ("Got empty tensor in batch of non-empty tensors."). So
  every row of `exclude_movie_ids` starts with "" (E >= 1): padding then adds "" (nothing to
  exclude), never another row's movie. The model refuses rows that do not start with "".
- Requests carry at most MAX_BATCH_SIZE rows: large-batch splitting stays off (see deploy.py), as
  it would concatenate the parts of one request answered in different batches, whose K may differ
  (`SplitInputTask`'s done callback: `tensor::Concat` of the parts).
"""
from typing import Dict, List, Sequence

import numpy as np
import tensorflow as tf

from components import features

SERVING_DEFAULT, REGRESS = "serving_default", "regress"
PREDICT_RATING, RECOMMEND = "predict_rating", "recommend"
SIMILAR_MOVIES, SIMILAR_USERS = "similar_movies", "similar_users"
# The Regress API's method name (tensorflow_serving/servables/tensorflow/regressor.cc
# `PreProcessRegression` refuses other signatures for Regress).
REGRESS_METHOD = "tensorflow/serving/regress"
# Most rows in one request = batching's max_batch_size (serving/deploy.py); a larger request is
# refused with INVALID_ARGUMENT "Task size N is larger than maximum input batch size 256" by
# TensorFlow's tensorflow/core/kernels/batching_util/shared_batch_scheduler.h
# `Queue::ValidateBatchTaskQueueCapacity` (input_batch_size_limit = max_batch_size there).
MAX_BATCH_SIZE = 256
# The leading column of every exclude_movie_ids row and its padding: "" excludes nothing.
NO_MOVIE = ""


def example(user_id: str, movie_id: str) -> bytes:
    """A serialized tf.Example with the two IDs: the input of `serving_default`, `regress`
    (the Regress API) and `transform_features`."""
    feature = lambda value: tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
    return tf.train.Example(features=tf.train.Features(feature={
        features.USER_ID: feature(user_id), features.MOVIE_ID: feature(movie_id)})).SerializeToString()


def exclusions(rows: Sequence[Sequence[str]]) -> np.ndarray:
    """exclude_movie_ids for rows of movie IDs to leave out: [B, 1 + longest], each row "" first,
    then its IDs, then "" up to the longest row."""
    width = 1 + max((len(row) for row in rows), default=0)
    table = np.full([len(rows), width], NO_MOVIE, dtype=object)
    for i, row in enumerate(rows):
        table[i, 1:1 + len(row)] = list(row)
    return table


def recommend_inputs(user_ids: Sequence[str], ks: Sequence[int], exclude_seen: Sequence[bool],
                     exclude: Sequence[Sequence[str]]) -> Dict[str, np.ndarray]:
    """The inputs of `recommend` for B rows: one k, one exclude_seen, one exclusion list each."""
    return {"user_id": np.array(user_ids, dtype=object), "k": np.array(ks, np.int32),
            "exclude_seen": np.array(exclude_seen, bool), "exclude_movie_ids": exclusions(exclude)}


def top_columns(values: np.ndarray, k: int) -> np.ndarray:
    """A row's first k ranked columns: a batch may have ranked to a larger k (see above)."""
    return np.asarray(values)[..., :k]


def signature_inputs(users: Sequence[str], movies: Sequence[str],
                     ks: Sequence[int]) -> List[tuple]:
    """(signature, inputs) for one request per serving signature on rows (user, movie, k), k
    differing between rows as in a merged batch: the warmup file's records and infra
    validation's canary requests. The first row excludes its movie and what the user has seen.
    `transform_features` is TFMA's preprocessing signature, not a client's: it parses complete
    labelled examples, so it has no request here."""
    examples = np.array([example(u, m) for u, m in zip(users, movies)], dtype=object)
    users_, movies_ = np.array(users, dtype=object), np.array(movies, dtype=object)
    ks_ = np.array(ks, np.int32)
    first_only = [i == 0 for i in range(len(users))]
    return [
        (SERVING_DEFAULT, {"examples": examples}),
        (REGRESS, {"inputs": examples}),
        (PREDICT_RATING, {"user_id": users_, "movie_id": movies_}),
        (RECOMMEND, recommend_inputs(users, ks, first_only,
                                     [[m] if first else [] for m, first in zip(movies, first_only)])),
        (SIMILAR_MOVIES, {"movie": movies_, "k": ks_}),
        (SIMILAR_USERS, {"user_id": users_, "k": ks_}),
    ]
