"""Small hand-built SavedModels for the TF Serving conformance tests (built in ~2 s, no pipeline).

`Catalogue` mirrors the movierec serving contract's shapes ([B] IDs, [B] k and exclude flags,
[B, E] exclusions) over five movies, plus odd signatures a real export must not have: a scalar
`k` (TF Serving's batching refuses rank-0 inputs), a scalar output (its batching cannot split
it), a Regress and a Classify signature, and a `*_bytes` output (sent as {"b64": ...} over REST).
"""
import os

import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

from serving.contract import WARMUP_FILE

MOVIES = [b"m1", b"m2", b"m3", b"m4", b"m5"]
SCORES = [5.0, 4.0, 3.0, 2.0, 1.0]
IDS = tf.TensorSpec([None], tf.string)


class Catalogue(tf.Module):
    def __init__(self):
        super().__init__()
        self.movies = tf.constant(MOVIES)
        self.scores = tf.constant(SCORES)

    def _top(self, k, exclude):
        """Per row: the k best movies not in the row's exclusions (k clipped to the catalogue)."""
        excluded = tf.reduce_any(tf.equal(self.movies[None, :, None], exclude[:, None, :]), axis=2)
        scores = tf.where(excluded, tf.fill(tf.shape(excluded), -1e9), self.scores[None, :])
        width = tf.minimum(tf.reduce_max(k), len(MOVIES))
        top = tf.math.top_k(scores, k=width)
        return tf.gather(self.movies, top.indices), top.values

    @tf.function(input_signature=[IDS, tf.TensorSpec([None], tf.int32, name="k"),
                                  tf.TensorSpec([None, None], tf.string, name="exclude_movie_ids")])
    def recommend(self, user_id, k, exclude_movie_ids):
        movies, scores = self._top(k, exclude_movie_ids)
        return {"movie_id": movies, "score": scores, "user_id": user_id}

    @tf.function(input_signature=[IDS, tf.TensorSpec([], tf.int32, name="k")])
    def scalar_k(self, user_id, k):
        movies, scores = self._top(tf.reshape(k, [1]), tf.zeros([tf.size(user_id), 0], tf.string))
        return {"movie_id": movies, "score": scores}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def total(self, x):
        return {"total": tf.reduce_sum(x)}

    @tf.function(input_signature=[IDS, IDS])
    def predict_rating(self, user_id, movie_id):
        known = tf.reduce_any(tf.equal(movie_id[:, None], self.movies[None, :]), axis=1)
        return {"rating": tf.where(known, 4.0, 3.0), "id_bytes": movie_id}

    def _rating_of_examples(self, serialized):
        parsed = tf.io.parse_example(serialized, {"movie_id": tf.io.FixedLenFeature([], tf.string)})
        return self.predict_rating(parsed["movie_id"], parsed["movie_id"])["rating"]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress(self, inputs):
        return {"outputs": self._rating_of_examples(inputs)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(self, inputs):
        rating = self._rating_of_examples(inputs)
        batch = tf.shape(rating)[0]
        return {"classes": tf.tile([[b"liked", b"not liked"]], [batch, 1]),
                "scores": tf.stack([rating / 5.0, 1.0 - rating / 5.0], axis=1)}


def predict_log(signature: str, **inputs) -> prediction_log_pb2.PredictionLog:
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(signature_name=signature))
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))


GOOD_WARMUP = [predict_log("recommend", user_id=[b"u"], k=[2], exclude_movie_ids=[[b"m1"]])]
# Passes without batching, fails with it: TF Serving's batching refuses the rank-0 `k`.
SCALAR_WARMUP = [predict_log("scalar_k", user_id=[b"u"], k=2)]
# Fails either way: no such signature.
BROKEN_WARMUP = [predict_log("no_such_signature", user_id=[b"u"])]


def save(version_dir: str, warmup=()) -> str:
    module = Catalogue()
    signatures = {name: getattr(module, name).get_concrete_function()
                  for name in ("recommend", "scalar_k", "total", "predict_rating", "regress", "classify")}
    signatures["serving_default"] = signatures["predict_rating"]
    tf.saved_model.save(module, version_dir, signatures=signatures)
    from tensorflow.python.saved_model import loader_impl
    saved_model = loader_impl.parse_saved_model(version_dir)
    graph = saved_model.meta_graphs[0]
    graph.signature_def["regress"].method_name = "tensorflow/serving/regress"
    graph.signature_def["classify"].method_name = "tensorflow/serving/classify"
    with open(os.path.join(version_dir, "saved_model.pb"), "wb") as f:
        f.write(saved_model.SerializeToString())
    if warmup:
        os.makedirs(os.path.join(version_dir, "assets.extra"), exist_ok=True)
        with tf.io.TFRecordWriter(os.path.join(version_dir, WARMUP_FILE)) as writer:
            for log in warmup:
                writer.write(log.SerializeToString())
    return version_dir
