"""Mixed-request load on a TF Serving endpoint, shared by the serving load test and benchmark.

`LoadRun` starts client threads, each with its own gRPC channel, that send a fixed number of
requests cycling through every call a movierec client makes: Predict on each serving signature,
Regress, GetModelMetadata and GetModelStatus. `load_with_swap` pushes a new version mid-way and
holds the clients' last share of requests until the server reports that version AVAILABLE, so the
swap lands mid-load however long the server takes to see and load it. Every call has a deadline
and the run an overall timeout, so a stuck server fails the run instead of hanging it. Each answer
is checked for plausibility, so a wrong answer counts as an error like a failed call. `flood` sends
malformed requests and checks each gets the status code TF Serving answers with.
"""
import collections
import dataclasses
import itertools
import os
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2,
                                     get_model_status_pb2, regression_pb2)

from serving import contract
from serving.client import GrpcBackend, RecommenderClient, predict_request
from serving.contract import rating_example, served_versions

UNKNOWN_USER = "load-unknown-user"


class WrongAnswer(Exception):
    """A call that succeeded with an answer that cannot be right."""


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise WrongAnswer(what)


@dataclasses.dataclass(frozen=True)
class Ids:
    """IDs the model knows, to draw requests from."""
    users: Sequence[str]
    movies: Sequence[str]


def known_ids(version_dir: str) -> Ids:
    """Every user and movie ID of a pushed version, from the catalogue it carries."""
    users, movies = contract.catalogue_ids(version_dir)
    return Ids(users, movies)


# --- the request kinds: each makes one call, checks the answer, returns the version that answered --


def _serving_default(client: RecommenderClient, user: str, movie: str) -> Optional[int]:
    examples = np.array([rating_example(user, movie)], dtype=object)
    rating = client.backend.call(contract.SERVING_DEFAULT, {contract.EXAMPLES: examples})[contract.RATING]
    _check(rating.shape == (1,) and np.isfinite(rating).all(), "serving_default rating")
    return client.backend.last_version


def _predict_rating(client: RecommenderClient, user: str, movie: str) -> Optional[int]:
    known, unknown = client.predict([user, UNKNOWN_USER], [movie, movie])
    _check(known.known_user and known.known_movie and not unknown.known_user, "predict_rating known flags")
    _check(np.isfinite([known.rating, unknown.rating]).all(), "predict_rating rating")
    return client.backend.last_version


def _recommend(client: RecommenderClient, user: str, movie: str) -> Optional[int]:
    answer = client.recommend(user, k=10, exclude_seen=True, exclude=[movie])
    scores = [item.score for item in answer.items]
    _check(answer.known and scores and scores == sorted(scores, reverse=True), "recommend ranking")
    _check(movie not in {item.id for item in answer.items}, "recommend returned an excluded movie")
    return client.backend.last_version


def _similar_movies(client: RecommenderClient, user: str, movie: str) -> Optional[int]:
    answer = client.similar_movies(movie, k=10)
    _check(answer.known and answer.items and answer.query == movie, "similar_movies of a known movie")
    return client.backend.last_version


def _similar_users(client: RecommenderClient, user: str, movie: str) -> Optional[int]:
    answer = client.similar_users(user, k=10)
    _check(answer.known and answer.items and user not in {item.id for item in answer.items}, contract.SIMILAR_USERS)
    return client.backend.last_version


def _regress(client: RecommenderClient, user: str, movie: str) -> Optional[int]:
    values = client.backend.regress([rating_example(user, movie), rating_example(UNKNOWN_USER, movie)])
    _check(values.shape == (2,) and np.isfinite(values).all(), "Regress values")
    return client.backend.last_version


def _metadata(client: RecommenderClient, user: str, movie: str) -> Optional[int]:
    signatures = get_model_metadata_pb2.SignatureDefMap()
    client.backend.metadata().metadata[contract.SIGNATURE_DEF].Unpack(signatures)
    _check(contract.RECOMMEND in signatures.signature_def, "GetModelMetadata signatures")
    return client.backend.last_version


def _status(client: RecommenderClient, user: str, movie: str) -> Optional[int]:
    available = [s.version for s in client.backend.status().model_version_status if s.state == s.AVAILABLE]
    _check(bool(available), "GetModelStatus: no AVAILABLE version")
    return None  # lists every version; the swap check follows the versions that answered


KINDS: Dict[str, Callable[[RecommenderClient, str, str], Optional[int]]] = {
    "predict serving_default": _serving_default, "predict predict_rating": _predict_rating,
    "predict recommend": _recommend, "predict similar_movies": _similar_movies,
    "predict similar_users": _similar_users, contract.REGRESS: _regress, "metadata": _metadata, "status": _status}


@dataclasses.dataclass
class Call:
    kind: str
    started_s: float  # since the run started
    seconds: float
    version: Optional[int]  # the version that answered; None for status and failed calls
    error: str = ""


@dataclasses.dataclass
class LoadResult:
    calls: List[List[Call]]  # per client, in the order sent
    elapsed_s: float
    timed_out: bool
    held_s: float = 0.0  # client-seconds spent waiting at the hold (LoadRun.hold), in elapsed_s

    def all_calls(self) -> List[Call]:
        return list(itertools.chain.from_iterable(self.calls))

    def errors(self) -> List[Call]:
        return [call for call in self.all_calls() if call.error]

    def clients_that_went_back(self) -> List[int]:
        """Clients answered by an older version after a newer one: a swap must be one-way."""
        went_back = []
        for client, calls in enumerate(self.calls):
            versions = [call.version for call in calls if call.version is not None]
            if any(later < earlier for earlier, later in zip(versions, versions[1:])):
                went_back.append(client)
        return went_back

    def latency_ms(self) -> Dict[str, np.ndarray]:
        """Latencies of the successful calls, by kind."""
        return {kind: np.array([c.seconds * 1000 for c in self.all_calls() if c.kind == kind and not c.error])
                for kind in KINDS}

    def requests_per_s(self) -> float:
        return len(self.all_calls()) / self.elapsed_s


class ClientThreads:
    """`count` threads, each with its own gRPC channel, running `work(number, backend, stop)`."""

    def __init__(self, target: str, model_name: str, count: int, call_timeout_s: float):
        self.target, self.model_name, self.call_timeout_s = target, model_name, call_timeout_s
        self.stop = threading.Event()
        self.threads: List[threading.Thread] = []
        self.count = count

    def start(self, work: Callable[[int, GrpcBackend, threading.Event], None]) -> None:
        def run(number: int) -> None:
            backend = GrpcBackend(self.target, self.model_name, timeout_s=self.call_timeout_s)
            try:
                work(number, backend, self.stop)
            finally:
                backend.close()

        self.threads = [threading.Thread(target=run, args=(n,), name=f"load-client-{n}", daemon=True)
                        for n in range(self.count)]
        for thread in self.threads:
            thread.start()

    def running(self) -> bool:
        return any(thread.is_alive() for thread in self.threads)

    def join(self, timeout_s: float) -> bool:
        """Waits for every thread; past the timeout they stop after their current call. True if
        they had to be stopped."""
        deadline = time.monotonic() + timeout_s
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        timed_out = self.running()
        if timed_out:
            self.stop.set()
            for thread in self.threads:
                thread.join(self.call_timeout_s + 1)
        return timed_out


class LoadRun:
    """`clients` threads x `requests_per_client` mixed requests against `target`."""

    def __init__(self, target: str, model_name: str, ids: Ids, clients: int = 8,
                 requests_per_client: int = 1000, call_timeout_s: float = 10.0, seed: int = 0):
        self.ids, self.requests_per_client, self.seed = ids, requests_per_client, seed
        self._threads = ClientThreads(target, model_name, clients, call_timeout_s)
        self._calls: List[List[Call]] = [[] for _ in range(clients)]
        self._started = 0.0
        self._hold_from = requests_per_client  # no hold unless hold() says so
        self._released = threading.Event()
        self._held_s = [0.0] * clients

    @property
    def total(self) -> int:
        return len(self._calls) * self.requests_per_client

    @property
    def completed(self) -> int:
        return sum(len(calls) for calls in self._calls)

    def hold(self, fraction: float) -> None:
        """Before start: each client, once it has sent `fraction` of its requests, waits for
        `release()` (or the run's timeout) before sending the rest."""
        self._hold_from = int(self.requests_per_client * fraction)

    def release(self) -> None:
        self._released.set()

    def start(self) -> None:
        self._started = time.perf_counter()
        self._threads.start(self._client)

    def wait_until_available(self, version: int, timeout_s: float) -> bool:
        """Polls GetModelStatus, as a client would, until `version` is AVAILABLE; False on timeout."""
        backend = GrpcBackend(self._threads.target, self._threads.model_name, timeout_s=self._threads.call_timeout_s)
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                try:
                    if any(s.version == version and s.state == s.AVAILABLE
                           for s in backend.status().model_version_status):
                        return True
                except grpc.RpcError:
                    pass  # a blink while versions change: ask again
                time.sleep(0.05)
            return False
        finally:
            backend.close()

    def elapsed_s(self) -> float:
        return time.perf_counter() - self._started

    def wait_for(self, completed: int, timeout_s: float) -> bool:
        """Blocks until at least `completed` requests are answered; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self.completed < completed and time.monotonic() < deadline and self._threads.running():
            time.sleep(0.05)
        return self.completed >= completed

    def join(self, timeout_s: float) -> LoadResult:
        timed_out = self._threads.join(timeout_s)
        return LoadResult([list(calls) for calls in self._calls], time.perf_counter() - self._started, timed_out,
                          sum(self._held_s))

    def _client(self, number: int, backend: GrpcBackend, stop: threading.Event) -> None:
        rng = np.random.default_rng(self.seed + number)
        client, kinds = RecommenderClient(backend), list(KINDS.items())
        for sent in range(self.requests_per_client):
            if sent == self._hold_from:
                held = time.perf_counter()
                while not self._released.wait(0.05) and not stop.is_set():
                    pass
                self._held_s[number] = time.perf_counter() - held
            if stop.is_set():
                return
            kind, call = kinds[(number + sent) % len(kinds)]
            user = self.ids.users[rng.integers(len(self.ids.users))]
            movie = self.ids.movies[rng.integers(len(self.ids.movies))]
            started = time.perf_counter()
            try:
                version, error = call(client, user, movie), ""
            except grpc.RpcError as e:
                version, error = None, f"{e.code().name}: {e.details()}"
            except Exception as e:  # a wrong answer, or a client-side failure: counted, not fatal
                version, error = None, f"{type(e).__name__}: {e}"
            self._calls[number].append(
                Call(kind, started - self._started, time.perf_counter() - started, version, error))


@dataclasses.dataclass
class Swap:
    old: int
    new: int
    pushed_at_s: float  # since the load started
    available_s: Optional[float]  # when GetModelStatus first said the new version is AVAILABLE, if it did
    first_new_answer_s: Optional[float]  # the first call the new version answered, if any
    answered_by: Dict[int, int]  # version -> successful calls


# The new version is pushed a quarter of the way in; the clients' last quarter waits until the server
# reports it AVAILABLE. Seeing and loading it takes a poll (1 s in the tests) plus a load and warm-up
# of 1-25 s on 2 shared cores, while 8 clients answer their 8,000 requests in 5-10 s: without the
# hold a slow swap would land after the load, and a load test that passes only when the server is
# quick enough is a timing race. A quick swap never makes the clients wait.
PUSH_AFTER, HOLD_AT = 0.25, 0.75


def load_with_swap(load: LoadRun, model_base: str, timeout_s: float,
                   publish: Callable[[str, str], int]) -> Tuple[LoadResult, Swap]:
    """Runs the load and, PUSH_AFTER of the way through, publishes a copy of the served version as
    the next one with `publish(model_dir, model_base) -> version` (the caller passes the Pusher's
    publish: staged, then renamed into place, as a pipeline push does). Each client's requests past
    HOLD_AT wait until the new version is AVAILABLE (or the timeout), so some are sent after it is."""
    load.hold(HOLD_AT)
    load.start()
    load.wait_for(int(load.total * PUSH_AFTER), timeout_s)
    old = served_versions(model_base)[-1]
    pushed_at = load.elapsed_s()
    new = publish(os.path.join(model_base, str(old)), model_base)
    available = load.wait_until_available(new, max(0.0, timeout_s - load.elapsed_s()))
    available_at = load.elapsed_s() if available else None
    load.release()
    result = load.join(max(0.0, timeout_s - load.elapsed_s()))
    answered = [call for call in result.all_calls() if call.version is not None]
    first_new = min((call.started_s for call in answered if call.version == new), default=None)
    return result, Swap(old, new, pushed_at, available_at, first_new,
                        dict(collections.Counter(c.version for c in answered)))


# --- malformed requests ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Malformed:
    name: str
    expected: grpc.StatusCode
    send: Callable[[GrpcBackend], object]  # makes the call on the backend's stubs


def _predict(signature: str, model: str, version: Optional[int] = None, **inputs):
    request = predict_request(model, signature, inputs)
    if version is not None:
        request.model_spec.version.value = version
    return lambda backend: backend.prediction.Predict(request, timeout=backend.timeout_s)


def _regress_request(model: str, signature: str, examples: Sequence[bytes]):
    request = regression_pb2.RegressionRequest()
    request.model_spec.name, request.model_spec.signature_name = model, signature
    for example in examples:
        request.input.example_list.examples.add().ParseFromString(example)
    return lambda backend: backend.prediction.Regress(request, timeout=backend.timeout_s)


def _status_request(model: str, version: Optional[int] = None):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model
    if version is not None:
        request.model_spec.version.value = version
    return lambda backend: backend.models.GetModelStatus(request, timeout=backend.timeout_s)


def _metadata_request(model: str, field: str):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=[field])
    request.model_spec.name = model
    return lambda backend: backend.prediction.GetModelMetadata(request, timeout=backend.timeout_s)


def _tensor(dtype, dims: Sequence[int], **values) -> tensor_pb2.TensorProto:
    """A TensorProto built by hand, so its values can disagree with its shape (fewer values are
    fine: the last one repeats; more, or a partial element, are not)."""
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims])
    return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape, **values)


def malformed_requests(model: str, user: str, movie: str, batching: bool = True) -> List[Malformed]:
    """Requests TF Serving refuses: unknown model or version -> NOT_FOUND; unknown Predict
    signature -> FAILED_PRECONDITION; input that does not fit the signature -> INVALID_ARGUMENT.
    (IDs of rank 2 are not among them: TF Serving checks no shapes and the model broadcasts them.)
    Inputs of different batch sizes are refused only by the batching session (`batching`); without
    it TF Serving runs them and the model broadcasts. The server must answer each and stay up."""
    not_found, invalid = grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT
    ids = {contract.USER_ID: [user], contract.MOVIE_ID: [movie]}
    no_exclusions = {contract.EXCLUDE_SEEN: [False], contract.EXCLUDE_MOVIE_IDS: contract.exclusions([[]])}
    recommend = lambda **inputs: _predict(contract.RECOMMEND, model, **{
        contract.USER_ID: [user], contract.K: np.array([5], np.int32), **no_exclusions, **inputs})
    example = rating_example(user, movie)
    return [
        Malformed("unknown model", not_found, _predict(contract.PREDICT_RATING, "no-such-model", **ids)),
        Malformed("unknown version", not_found, _predict(contract.PREDICT_RATING, model, version=1, **ids)),
        Malformed("unknown signature", grpc.StatusCode.FAILED_PRECONDITION,  # predict_util.cc RunPredict
                  _predict("no_such_signature", model, **ids)),
        Malformed("status of an unknown model", not_found, _status_request("no-such-model")),
        Malformed("status of an unknown version", not_found, _status_request(model, version=1)),
        Malformed("metadata of an unknown model", not_found, _metadata_request("no-such-model", contract.SIGNATURE_DEF)),
        Malformed("Regress on an unknown model", not_found, _regress_request("no-such-model", contract.REGRESS, [example])),
        Malformed("unsupported metadata field", invalid, _metadata_request(model, "no_such_field")),
        Malformed("missing input", invalid, _predict(contract.PREDICT_RATING, model, user_id=[user])),
        Malformed("no inputs", invalid, _predict(contract.PREDICT_RATING, model)),
        Malformed("wrong input key", invalid, _predict(contract.PREDICT_RATING, model, user=[user], movie_id=[movie])),
        Malformed("extra input", invalid, _predict(contract.PREDICT_RATING, model, k=np.array([1], np.int32), **ids)),
        Malformed("float IDs", invalid, _predict(contract.PREDICT_RATING, model, user_id=[1.5], movie_id=[movie])),
        Malformed("int64 k", invalid, recommend(k=np.array([5], np.int64))),
        Malformed("float k", invalid, recommend(k=np.array([5], np.float32))),
        Malformed("int exclude_seen", invalid, recommend(exclude_seen=np.array([1], np.int32))),
        Malformed("scalar IDs", invalid, _predict(contract.PREDICT_RATING, model, user_id=user, movie_id=movie)),
        Malformed("scalar k", invalid, recommend(k=np.int32(5))),
        Malformed("scalar exclude_seen", invalid, recommend(exclude_seen=False)),
        Malformed("2 users, 1 k", invalid, recommend(
            user_id=[user, user], exclude_seen=[False, False], exclude_movie_ids=contract.exclusions([[], []]))),
        Malformed("exclusions of rank 1", invalid, recommend(exclude_movie_ids=np.array([movie], dtype=object))),
        Malformed("exclusion rows != users", invalid, recommend(
            user_id=[user, user], k=np.array([5, 5], np.int32), exclude_seen=[False, False],
            exclude_movie_ids=contract.exclusions([[movie]]))),
        Malformed("k = 0", invalid, recommend(k=np.array([0], np.int32))),
        Malformed("negative k", invalid, _predict(contract.SIMILAR_USERS, model, user_id=[user],
                                                  k=np.array([-3], np.int32))),
        Malformed("more values than the shape holds", invalid, _predict(
            contract.PREDICT_RATING, model, user_id=_tensor(types_pb2.DT_STRING, [1], string_val=[user.encode()] * 3),
            movie_id=[movie])),
        Malformed("truncated tensor_content", invalid, _predict(
            contract.RECOMMEND, model, **{contract.USER_ID: [user], **no_exclusions,
                                          contract.K: _tensor(types_pb2.DT_INT32, [1], tensor_content=b"\x05\x00")})),
        Malformed("not a tf.Example", invalid, _predict(contract.SERVING_DEFAULT, model, examples=[b"\xff not a proto"])),
        Malformed("tf.Example without movie_id", invalid, _predict(contract.SERVING_DEFAULT, model, examples=[
            tf.train.Example(features=tf.train.Features(feature={contract.USER_ID: tf.train.Feature(
                bytes_list=tf.train.BytesList(value=[user.encode()]))})).SerializeToString()])),
        Malformed("unknown output filter", invalid, _with_output_filter(
            predict_request(model, contract.PREDICT_RATING, ids), "no_such_output")),
        Malformed("Regress without examples", invalid, _regress_request(model, contract.REGRESS, [])),
        Malformed("Regress on a Predict signature", invalid, _regress_request(model, contract.RECOMMEND, [example])),
        Malformed("Classify on a regression model", invalid, _classify_request(model)),
    ] + ([Malformed("2 users, 1 movie", invalid, _predict(  # batching_util.h ComputeTensorBatchSize
        contract.PREDICT_RATING, model, user_id=[user, user], movie_id=[movie]))] if batching else [])


def _with_output_filter(request, output: str):
    request.output_filter.append(output)
    return lambda backend: backend.prediction.Predict(request, timeout=backend.timeout_s)


def _classify_request(model: str):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = model
    return lambda backend: backend.prediction.Classify(request, timeout=backend.timeout_s)


def answer_code(backend: GrpcBackend, request: Malformed) -> Tuple[grpc.StatusCode, str]:
    """The status code (and message) the server answers a malformed request with; OK if it did not fail."""
    try:
        request.send(backend)
    except grpc.RpcError as e:
        return e.code(), e.details()
    return grpc.StatusCode.OK, ""


@dataclasses.dataclass
class FloodResult:
    sent: int
    wrong_codes: List[str]  # "<request>: expected X, got Y (<message>)"
    elapsed_s: float
    timed_out: bool


def flood(target: str, requests: List[Malformed], clients: int = 8, rounds: int = 10,
          call_timeout_s: float = 10.0, timeout_s: float = 120.0) -> FloodResult:
    """Every client sends every malformed request `rounds` times, concurrently."""
    wrong: List[List[str]] = [[] for _ in range(clients)]
    sent = [0] * clients

    def client(number: int, backend: GrpcBackend, stop: threading.Event) -> None:
        for request in itertools.chain.from_iterable(itertools.repeat(requests, rounds)):
            if stop.is_set():
                return
            code, details = answer_code(backend, request)
            sent[number] += 1
            if code != request.expected:
                wrong[number].append(f"{request.name}: expected {request.expected.name}, "
                                     f"got {code.name} ({details})")

    started = time.perf_counter()
    threads = ClientThreads(target, "", clients, call_timeout_s)
    threads.start(client)
    timed_out = threads.join(timeout_s)
    return FloodResult(sum(sent), list(itertools.chain.from_iterable(wrong)),
                       time.perf_counter() - started, timed_out)
