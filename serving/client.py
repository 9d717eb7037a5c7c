"""Client for a served movierec model, over TF Serving's gRPC API or in-process.

`GrpcBackend` talks to TF Serving (or `movierec serve`) with the standard PredictionService
stub; `SavedModelBackend` calls the same signatures on the newest pushed SavedModel directly.
`RecommenderClient` turns either into typed answers: ratings, recommendations, neighbours.
"""
import dataclasses
import os
from typing import Dict, List, Optional, Sequence

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2,
                                     model_service_pb2_grpc, prediction_service_pb2_grpc)

from serving import contract
from serving.contract import predict_request, regression_request
from serving.contract import (FOUND, K, KNOWN_MOVIE, KNOWN_USER, MOVIE,
                              MOVIE_ID, QUERY_MOVIE_ID, QUERY_TITLE, RATING, SCORE, TITLE, USER_ID,
                              served_versions)

DEFAULT_SERVER = "localhost:8500"
DEFAULT_MODEL = "movierec"


class GrpcBackend:
    """Signatures called through PredictionService.Predict on a TF Serving endpoint."""

    def __init__(self, target: str = DEFAULT_SERVER, model_name: str = DEFAULT_MODEL,
                 timeout_s: float = 10.0):
        self.target, self.channel = target, grpc.insecure_channel(target)
        self.prediction = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)
        self.model_name, self.timeout_s = model_name, timeout_s
        self.last_version: Optional[int] = None

    def call(self, signature: str, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        response = self.prediction.Predict(predict_request(self.model_name, signature, inputs),
                                           timeout=self.timeout_s)
        self.last_version = response.model_spec.version.value
        return {key: contract.ndarray(proto) for key, proto in response.outputs.items()}

    def regress(self, examples: Sequence[bytes], signature: str = contract.REGRESS) -> np.ndarray:
        """Ratings of serialized tf.Examples through the Regress API."""
        response = self.prediction.Regress(regression_request(self.model_name, signature, examples),
                                           timeout=self.timeout_s)
        self.last_version = response.model_spec.version.value
        return np.array([r.value for r in response.result.regressions], np.float32)

    def status(self) -> get_model_status_pb2.GetModelStatusResponse:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = self.model_name
        return self.models.GetModelStatus(request, timeout=self.timeout_s)

    def metadata(self) -> get_model_metadata_pb2.GetModelMetadataResponse:
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = self.model_name
        response = self.prediction.GetModelMetadata(request, timeout=self.timeout_s)
        self.last_version = response.model_spec.version.value
        return response

    def close(self) -> None:
        self.channel.close()


class SavedModelBackend:
    """The same signatures on the newest version under a model base path, in this process."""

    def __init__(self, model_base: str):
        versions = served_versions(model_base)
        if not versions:
            raise FileNotFoundError(f"{model_base}: no pushed model versions")
        self.last_version = versions[-1]
        self.model = tf.saved_model.load(os.path.join(model_base, str(self.last_version)))

    def call(self, signature: str, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        outputs = self.model.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
        return {key: value.numpy() for key, value in outputs.items()}

    def close(self) -> None:
        self.model = None


@dataclasses.dataclass
class Rating:
    user_id: str
    movie_id: str
    rating: float
    known_user: bool
    known_movie: bool


@dataclasses.dataclass
class Item:
    id: str
    score: float
    title: str = ""


@dataclasses.dataclass
class Answer:
    """Ranked items for one query, and whether the query ID was known to the model."""
    query: str
    known: bool
    items: List[Item]
    query_title: str = ""


def _text(values) -> List[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in np.asarray(values).reshape(-1)]


class RecommenderClient:
    def __init__(self, backend):
        self.backend = backend

    def predict(self, user_ids: Sequence[str], movie_ids: Sequence[str]) -> List[Rating]:
        """Ratings of (user, movie) pairs, sent MAX_BATCH_SIZE pairs a request (the most one
        batched request may carry)."""
        ratings = []
        for start in range(0, len(user_ids), contract.MAX_BATCH_SIZE):
            users = list(user_ids[start:start + contract.MAX_BATCH_SIZE])
            movies = list(movie_ids[start:start + contract.MAX_BATCH_SIZE])
            out = self.backend.call(contract.PREDICT_RATING, {
                USER_ID: np.array(users, dtype=object), MOVIE_ID: np.array(movies, dtype=object)})
            ratings += [Rating(u, m, float(r), bool(ku), bool(km)) for u, m, r, ku, km in zip(
                users, movies, out[RATING], out[KNOWN_USER], out[KNOWN_MOVIE])]
        return ratings

    def recommend(self, user_id: str, k: int = 10, exclude_seen: bool = False,
                  exclude: Sequence[str] = ()) -> Answer:
        """Top-k movies; excluded movies are left out even where fewer than k remain."""
        out = self.backend.call(contract.RECOMMEND,
                                contract.recommend_inputs([user_id], [k], [exclude_seen], [exclude]))
        top = lambda key: contract.top_columns(out[key][0], k)
        items = [Item(i, float(s), t) for i, s, t in zip(_text(top(MOVIE_ID)), top(SCORE), _text(top(TITLE)))
                 if np.isfinite(s)]
        return Answer(user_id, bool(out[KNOWN_USER][0]), items)

    def similar_movies(self, movie: str, k: int = 10) -> Answer:
        out = self.backend.call(contract.SIMILAR_MOVIES, {
            MOVIE: np.array([movie], dtype=object), K: np.array([k], dtype=np.int32)})
        found = bool(out[FOUND][0])
        top = lambda key: contract.top_columns(out[key][0], k)
        items = [Item(i, float(s), t) for i, s, t in zip(_text(top(MOVIE_ID)), top(SCORE), _text(top(TITLE)))] \
            if found else []
        return Answer(_text(out[QUERY_MOVIE_ID])[0] or movie, found, items, _text(out[QUERY_TITLE])[0])

    def similar_users(self, user_id: str, k: int = 10) -> Answer:
        out = self.backend.call(contract.SIMILAR_USERS, {
            USER_ID: np.array([user_id], dtype=object), K: np.array([k], dtype=np.int32)})
        known = bool(out[KNOWN_USER][0])
        top = lambda key: contract.top_columns(out[key][0], k)
        items = [Item(i, float(s)) for i, s in zip(_text(top(USER_ID)), top(SCORE))] if known else []
        return Answer(user_id, known, items)
