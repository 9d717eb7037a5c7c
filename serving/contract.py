"""What a pushed movierec model promises its clients: the one place for names and layout.

The export (models/export.py) builds signatures with these names, the Pusher lays out versions
this way, and everything under serving/ (client, server, load generator) reads only this module
to learn them. It imports TensorFlow's protos but never TFX or tf.Transform, so a gRPC client does
not load the pipeline stack.

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
- `exclude_movie_ids` [B, E]: row i's non-empty cells are the movies row i leaves out; "" is no
  movie wherever it is, so rows are sent as clients write them (padded at the end with "" to the
  longest, any E, one row or several). With `pad_variable_length_inputs` the same function pads
  each request's tensor to the batch's widest with *that request's first element*
  (`batching_util.cc` `PadTensor`: `pad_value(input.flat<T>()(0))`; session_bundle_config.proto's
  BatchingParameters has no other padding value, and tensorflow/serving#1279 asking for one was
  closed). That value is "" or a movie of the request's first row, so it never changes a one-row
  request's answer, nor one whose first cell is "". A request of several rows whose first cell is
  a movie ID gets that ID appended to its other rows when a wider request shares its batch, and no
  model can tell it from an ID the client sent there: the merged batch is the very one two one-row
  requests could give (tests/unit/models/test_export.py shows one). So a request of several rows
  keeps its first cell "" (`exclusions` below puts "" first in every row). SignatureDef
  `defaults` cannot make a per-row input optional: predict_util.cc `VerifyRequestInputsSize` lets
  an input with a default be left out and TF's saved_model `GetInputValues` feeds the default, but
  that is one fixed tensor, which `ComputeTensorBatchSize` refuses for any other B. A rank-1
  encoding (one joined string per row) would never be padded, but it is not the 2-D form clients
  send, and one input cannot take both (TF Serving merges tensors of one name only at one rank). A zero-width tensor
  cannot be padded: merged with wider ones it fails the whole batch ("Got empty tensor in batch of
  non-empty tensors.", INVALID_ARGUMENT), so send at least one column (`[[""]]` for none).
- Requests carry at most MAX_BATCH_SIZE rows: large-batch splitting stays off (serving/deploy.py), as
  it would concatenate the parts of one request answered in different batches, whose K may differ
  (`SplitInputTask`'s done callback: `tensor::Concat` of the parts).
"""
import math
import os
from typing import Dict, List, Sequence

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, regression_pb2

from ratings import features

# Signatures.
SERVING_DEFAULT = "serving_default"
REGRESS = "regress"
TRANSFORM_FEATURES = "transform_features"
PREDICT_RATING = "predict_rating"
RECOMMEND = "recommend"
SIMILAR_MOVIES = "similar_movies"
SIMILAR_USERS = "similar_users"

# TF Serving's method names (tensorflow/cc/saved_model/signature_constants.h): its Regress and
# Classify APIs only accept signatures whose method_name is theirs.
PREDICT_METHOD = "tensorflow/serving/predict"
REGRESS_METHOD = "tensorflow/serving/regress"
CLASSIFY_METHOD = "tensorflow/serving/classify"

# Most rows in one request = batching's max_batch_size (serving/deploy.py); a larger
# request is refused with INVALID_ARGUMENT "Task size N is larger than maximum input batch size
# 256" by TensorFlow's tensorflow/core/kernels/batching_util/shared_batch_scheduler.h
# `Queue::ValidateBatchTaskQueueCapacity` (input_batch_size_limit = max_batch_size there).
MAX_BATCH_SIZE = 256
# An exclude_movie_ids cell that names no movie (padding).
NO_MOVIE = ""

# GetModelMetadata's one supported field (servables/tensorflow/get_model_metadata_impl.cc).
SIGNATURE_DEF = "signature_def"

# Inputs.
EXAMPLES = "examples"  # serving_default, transform_features: serialized tf.Example [B]
INPUTS = "inputs"  # regress: serialized tf.Example [B] (the Regress API's fixed name)
USER_ID, MOVIE_ID = features.USER_ID, features.MOVIE_ID
MOVIE = "movie"  # similar_movies: an ID or a title
K = "k"
EXCLUDE_SEEN = "exclude_seen"
EXCLUDE_MOVIE_IDS = "exclude_movie_ids"

# Outputs.
RATING = features.LABEL_KEY
OUTPUTS = "outputs"  # regress (the Regress API's fixed name)
TITLE = features.TITLE
SCORE = "score"
KNOWN_USER, KNOWN_MOVIE = "known_user", "known_movie"
QUERY_MOVIE_ID, QUERY_TITLE, FOUND = "query_movie_id", "query_title", "found"

# TF Serving replays this file of PredictionLog records before a version serves
# (servables/tensorflow/saved_model_warmup_util.cc).
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


def rating_example(user_id: str, movie_id: str) -> bytes:
    """A serialized tf.Example with the two IDs: the input of `serving_default` and Regress."""
    feature = lambda value: tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
    return tf.train.Example(features=tf.train.Features(feature={
        USER_ID: feature(user_id), MOVIE_ID: feature(movie_id)})).SerializeToString()


# The typed field of each numeric dtype (tensorflow/core/framework/tensor.cc ProtoHelper, and
# tensor_util.py's append functions): the small integer types share int_val.
TYPED_FIELDS = {np.dtype(dtype): (tf.as_dtype(dtype).as_datatype_enum, field) for dtype, field in (
    (np.float32, "float_val"), (np.float64, "double_val"), (np.int32, "int_val"), (np.int16, "int_val"),
    (np.int8, "int_val"), (np.uint8, "int_val"), (np.uint16, "int_val"), (np.int64, "int64_val"),
    (np.uint32, "uint32_val"), (np.uint64, "uint64_val"), (np.bool_, "bool_val"))}
_BY_DATATYPE = {datatype: (dtype, field) for dtype, (datatype, field) in TYPED_FIELDS.items()}
# The two of them tf.make_tensor_proto never writes as tensor_content (tensor_util.py _TENSOR_CONTENT_TYPES).
_NEVER_CONTENT = {types_pb2.DT_BOOL, types_pb2.DT_UINT16}


def tensor_shape(shape: Sequence[int]) -> tensor_shape_pb2.TensorShapeProto:
    """TensorShape::AsProto: one Dim per dimension; passed to a TensorProto it is set even for a
    scalar, as make_tensor_proto and TF Serving's answers set it."""
    return tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in shape])


def request_tensor(value) -> tensor_pb2.TensorProto:
    """What tf.make_tensor_proto(value) gives, byte for byte. Arrays of strings and of the numeric
    types are built here directly, as make_tensor_proto builds them (a numeric array of more than
    one element as tensor_content, otherwise the typed field; strings UTF-8 encoded), because its
    per-call dtype and shape conversions cost ~5x the CPU (benchmarks/README.md) and count in
    every request's latency; anything else (lists, scalars, other dtypes, values it refuses) goes
    through make_tensor_proto (tests/unit/serving/test_client_tensors.py compares the two)."""
    if type(value) is np.ndarray and value.dtype.isnative:
        if value.dtype.kind in "OSU":
            try:
                strings = [tf.compat.as_bytes(v) for v in value.reshape(-1)]
            except TypeError:
                return tf.make_tensor_proto(value)  # its own error
            proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, tensor_shape=tensor_shape(value.shape))
            proto.string_val.extend(strings)
            return proto
        if value.dtype in TYPED_FIELDS:
            datatype, field = TYPED_FIELDS[value.dtype]
            proto = tensor_pb2.TensorProto(dtype=datatype, tensor_shape=tensor_shape(value.shape))
            if value.size > 1 and datatype not in _NEVER_CONTENT:
                proto.tensor_content = value.tobytes()
            else:
                getattr(proto, field).extend(value.reshape(-1).tolist())
            return proto
    return tf.make_tensor_proto(value)


def ndarray(proto: tensor_pb2.TensorProto) -> np.ndarray:
    """What tf.make_ndarray(proto) gives (Tensor::FromProto's rules). The forms requests and
    TF Serving's answers take are read here directly: a typed field with one value per element,
    or a numeric tensor_content (TensorFlow's own frombuffer call, so a short one fails as
    there); every other form (one value to repeat, fewer values to pad, no values, other
    dtypes) goes through make_ndarray, whose per-call dtype lookups cost ~4x the CPU."""
    shape = [dim.size for dim in proto.tensor_shape.dim]
    count = math.prod(shape)
    if count > 0 and min(shape, default=1) > 0:
        if proto.dtype == types_pb2.DT_STRING:
            if not proto.tensor_content and len(proto.string_val) == count:
                array = np.empty(count, dtype=object)
                array[:] = list(proto.string_val)
                return array.reshape(shape)
        elif proto.dtype in _BY_DATATYPE:
            dtype, field = _BY_DATATYPE[proto.dtype]
            if proto.tensor_content:
                return np.frombuffer(proto.tensor_content, dtype=dtype).copy().reshape(shape)
            values = getattr(proto, field)
            if len(values) == count:
                return np.fromiter(values, dtype, count).reshape(shape)
    return tf.make_ndarray(proto)


def predict_request(model_name: str, signature: str, inputs: Dict[str, object]) -> predict_pb2.PredictRequest:
    """A PredictRequest; each input is an array (converted as tf.make_tensor_proto does) or a
    TensorProto (sent as it is)."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(value if isinstance(value, tensor_pb2.TensorProto) else request_tensor(value))
    return request


def regression_request(model_name: str, signature: str, examples) -> regression_pb2.RegressionRequest:
    """A RegressionRequest (the Regress API) for serialized tf.Examples."""
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    for example in examples:
        request.input.example_list.examples.add().ParseFromString(example)
    return request


def served_versions(base: str) -> List[int]:
    """Numeric version folders under a TF Serving model base path, oldest first.

    TF Serving counts only children whose names parse as integers as versions
    (sources/storage_path/file_system_storage_path_source.cc), so staging folders are invisible.
    """
    if not tf.io.gfile.isdir(base):
        return []
    return sorted(int(name.rstrip("/")) for name in tf.io.gfile.listdir(base) if name.rstrip("/").isdigit())


def model_names(serving_dir: str) -> List[str]:
    """Models under a serving dir: the folders that hold numeric versions."""
    if not tf.io.gfile.isdir(serving_dir):
        return []
    return sorted(name.rstrip("/") for name in tf.io.gfile.listdir(serving_dir)
                  if served_versions(os.path.join(serving_dir, name.rstrip("/"))))


# Each version carries its catalogue's IDs as these variables (models/export.py RecommenderModule),
# readable from the SavedModel's checkpoint without loading the graph.
USER_IDS_VARIABLE, MOVIE_IDS_VARIABLE = "user_ids", "movie_ids"


def catalogue_ids(version_dir: str):
    """(user IDs, movie IDs) the version knows, as str, in vocabulary order."""
    reader = tf.train.load_checkpoint(os.path.join(version_dir, "variables", "variables"))
    read = lambda name: [value.decode("utf-8") for value in
                         reader.get_tensor(f"{name}/.ATTRIBUTES/VARIABLE_VALUE")]
    return read(USER_IDS_VARIABLE), read(MOVIE_IDS_VARIABLE)


def exclusions(rows: Sequence[Sequence[str]]) -> np.ndarray:
    """exclude_movie_ids for rows of movie IDs to leave out: [B, 1 + longest], each row "" first,
    then its IDs, then "" up to the longest row. The leading "" makes TF Serving's padding value ""
    for requests of any number of rows, and the tensor never zero-wide (see above)."""
    width = 1 + max((len(row) for row in rows), default=0)
    table = np.full([len(rows), width], NO_MOVIE, dtype=object)
    for i, row in enumerate(rows):
        table[i, 1:1 + len(row)] = list(row)
    return table


def recommend_inputs(user_ids: Sequence[str], ks: Sequence[int], exclude_seen: Sequence[bool],
                     exclude: Sequence[Sequence[str]]) -> Dict[str, np.ndarray]:
    """The inputs of `recommend` for B rows: one k, one exclude_seen, one exclusion list each."""
    return {USER_ID: np.array(user_ids, dtype=object), K: np.array(ks, np.int32),
            EXCLUDE_SEEN: np.array(exclude_seen, bool), EXCLUDE_MOVIE_IDS: exclusions(exclude)}


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
    examples = np.array([rating_example(u, m) for u, m in zip(users, movies)], dtype=object)
    users_, movies_ = np.array(users, dtype=object), np.array(movies, dtype=object)
    ks_ = np.array(ks, np.int32)
    first_only = [i == 0 for i in range(len(users))]
    return [
        (SERVING_DEFAULT, {EXAMPLES: examples}),
        (REGRESS, {INPUTS: examples}),
        (PREDICT_RATING, {USER_ID: users_, MOVIE_ID: movies_}),
        (RECOMMEND, recommend_inputs(users, ks, first_only,
                                     [[m] if first else [] for m, first in zip(movies, first_only)])),
        (SIMILAR_MOVIES, {MOVIE: movies_, K: ks_}),
        (SIMILAR_USERS, {USER_ID: users_, K: ks_}),
    ]
