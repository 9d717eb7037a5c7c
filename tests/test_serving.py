"""Contract tests: the real tensorflow-serving-api stubs against `movierec serve` on a pushed model."""
import json
import shutil
import subprocess
import threading
import time

import grpc
import numpy as np
import portpicker
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2,
                                     get_model_status_pb2, model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc, regression_pb2)

from components import features, pusher
from serving.client import GrpcBackend, RecommenderClient
from serving.repository import warmup_requests
from tests.cli import MOVIEREC, movierec

MODEL = "movierec"


class Server:
    def __init__(self, serving_dir, log_path):
        self.serving_dir, self.port = serving_dir, portpicker.pick_unused_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log = open(log_path, "w")
        self.process = subprocess.Popen(
            [*MOVIEREC, "serve", "--model-dir", serving_dir, "--port", str(self.port),
             "--poll-seconds", "0.5"], stdout=self.log, stderr=subprocess.STDOUT)
        self.channel = grpc.insecure_channel(self.address)
        self.predictions = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def status(self, model=MODEL):
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = model
        return self.models.GetModelStatus(request, timeout=5)

    def wait_until_available(self, timeout_s=180):
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            assert self.process.poll() is None, "server exited"
            try:
                if any(v.state == v.AVAILABLE for v in self.status().model_version_status):
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.5)
        raise TimeoutError("server did not become available")

    def stop(self):
        self.channel.close()
        self.process.terminate()
        self.process.wait(timeout=60)
        self.log.close()


@pytest.fixture(scope="module")
def server(trained_run, tmp_path_factory):
    run, result = trained_run
    assert result.returncode == 0, result.stderr[-3000:]
    serving_dir = tmp_path_factory.mktemp("serving") / "models"
    shutil.copytree(run.config.serving_dir, serving_dir)
    server = Server(str(serving_dir), serving_dir.parent / "server.log")
    server.wait_until_available()
    yield server
    server.stop()
    assert server.process.returncode == 0  # SIGTERM shuts down cleanly


def predict_request(signature, model=MODEL, **inputs):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request


def outputs(response):
    return {key: tf.make_ndarray(proto) for key, proto in response.outputs.items()}


def code_of(call):
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value.code(), raised.value.details()


def test_status_and_metadata(server):
    (status,) = server.status().model_version_status
    assert status.state == status.AVAILABLE and status.version == pusher.served_versions(
        f"{server.serving_dir}/{MODEL}")[-1]
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = MODEL
    response = server.predictions.GetModelMetadata(request, timeout=10)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    assert set(signatures.signature_def) == {
        "serving_default", "regress", "transform_features", "predict_rating", "recommend",
        "similar_movies", "similar_users"}
    assert set(signatures.signature_def["recommend"].inputs) == {
        "user_id", "k", "exclude_seen", "exclude_movie_ids"}
    assert response.model_spec.version.value == status.version


def test_every_signature_answers(server, ratings_sample):
    user, movie = ratings_sample.read_text().splitlines()[1].split(",")[:2]
    example = tf.train.Example(features=tf.train.Features(feature={
        key: tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
        for key, value in ((features.USER_ID, user), (features.MOVIE_ID, movie))})).SerializeToString()
    call = lambda request: outputs(server.predictions.Predict(request, timeout=10))

    by_example = call(predict_request("serving_default", examples=[example]))[features.LABEL_KEY]
    by_id = call(predict_request("predict_rating", user_id=[user, "nobody"], movie_id=[movie, movie]))
    assert by_example[0] == pytest.approx(by_id[features.LABEL_KEY][0], abs=1e-5)
    assert by_id["known_user"].tolist() == [True, False]
    assert np.all(np.isfinite(by_id[features.LABEL_KEY]))

    top = call(predict_request("recommend", user_id=[user], k=np.int32(5), exclude_seen=True,
                               exclude_movie_ids=np.array([[movie]], dtype=object)))
    assert top[features.MOVIE_ID].shape == (1, 5) and movie.encode() not in top[features.MOVIE_ID][0]
    assert all(title for title in top[features.TITLE][0])  # titles come from the joined movies.csv
    similar = call(predict_request("similar_movies", movie=[movie], k=np.int32(3)))
    assert similar["found"].tolist() == [True] and similar[features.MOVIE_ID].shape == (1, 3)
    users = call(predict_request("similar_users", user_id=[user], k=np.int32(3)))
    assert users["known_user"].tolist() == [True] and user.encode() not in users[features.USER_ID][0]

    regression = regression_pb2.RegressionRequest()
    regression.model_spec.name, regression.model_spec.signature_name = MODEL, "regress"
    regression.input.example_list.examples.add().ParseFromString(example)
    (result,) = server.predictions.Regress(regression, timeout=10).result.regressions
    assert result.value == pytest.approx(by_example[0], abs=1e-5)


def test_unknown_ids_get_fallbacks_not_errors(server):
    call = lambda request: outputs(server.predictions.Predict(request, timeout=10))
    top = call(predict_request("recommend", user_id=["stranger-1", "stranger-2"], k=np.int32(4),
                               exclude_seen=False, exclude_movie_ids=np.zeros([2, 0], dtype=object)))
    assert top["known_user"].tolist() == [False, False]
    assert top[features.MOVIE_ID][0].tolist() == top[features.MOVIE_ID][1].tolist()  # bias ranking
    similar = call(predict_request("similar_movies", movie=["no such film"], k=np.int32(3)))
    assert similar["found"].tolist() == [False]


def test_not_found_and_invalid_argument_codes(server):
    predict = server.predictions.Predict
    assert code_of(lambda: predict(predict_request("predict_rating", model="other", user_id=["1"],
                                                   movie_id=["1"]), timeout=10))[0] == grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: predict(predict_request("no_such_signature", user_id=["1"]),
                                   timeout=10))[0] == grpc.StatusCode.NOT_FOUND
    request = predict_request("predict_rating", user_id=["1"], movie_id=["1"])
    request.model_spec.version.value = 1
    assert code_of(lambda: predict(request, timeout=10))[0] == grpc.StatusCode.NOT_FOUND

    malformed = [
        predict_request("predict_rating", user_id=["1"]),                       # missing input
        predict_request("predict_rating", user_id=[1.5], movie_id=["1"]),        # wrong dtype
        predict_request("predict_rating", user_id=[["1"]], movie_id=[["1"]]),    # wrong rank
        predict_request("similar_users", user_id=["1"], k=np.int32(0)),          # k < 1
        predict_request("recommend", user_id=["1", "2"], k=np.int32(3), exclude_seen=False,
                        exclude_movie_ids=np.array([["1"]], dtype=object)),      # rows != users
    ]
    for bad in malformed:
        code, details = code_of(lambda: predict(bad, timeout=10))
        assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name = MODEL
    assert code_of(lambda: server.predictions.Classify(classify, timeout=10))[0] == \
        grpc.StatusCode.INVALID_ARGUMENT
    # ... and the server is still healthy.
    assert predict(predict_request("predict_rating", user_id=["1"], movie_id=["1"]), timeout=10).outputs


def test_warmup_requests_are_answered(server):
    version = pusher.served_versions(f"{server.serving_dir}/{MODEL}")[-1]
    logs = warmup_requests(f"{server.serving_dir}/{MODEL}/{version}")
    assert len(logs) >= 6
    for log in logs:
        request = log.predict_log.request
        request.model_spec.name = MODEL
        assert server.predictions.Predict(request, timeout=10).outputs


def test_client_commands_print_tables_and_json(server):
    table = movierec("recommend", "--user", "1", "-k", "3", "--exclude-seen", "--server", server.address)
    assert table.returncode == 0, table.stderr
    assert "Recommendations for 1" in table.stdout and "title" in table.stdout
    answer = json.loads(movierec("similar-movies", "1", "-k", "2", "--json", "--server", server.address).stdout)
    assert answer["known"] and len(answer["items"]) == 2 and answer["query_title"]
    status = movierec("status", "--server", server.address)
    assert "AVAILABLE" in status.stdout
    down = movierec("status", "--server", "127.0.0.1:1")
    assert down.returncode == 1 and "UNAVAILABLE" in down.stderr


def test_new_version_is_picked_up_while_a_client_keeps_calling(server):
    client = RecommenderClient(GrpcBackend(server.address, MODEL))
    errors, versions, stop = [], set(), threading.Event()

    def keep_calling():
        while not stop.is_set():
            try:
                client.recommend("1", k=5)
                versions.add(client.backend.last_version)
            except grpc.RpcError as e:
                errors.append(e)

    caller = threading.Thread(target=keep_calling)
    caller.start()
    base = f"{server.serving_dir}/{MODEL}"
    old = pusher.served_versions(base)[-1]
    time.sleep(1)
    new = pusher.publish(f"{base}/{old}", base)
    deadline = time.time() + 120
    while new not in versions and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1)
    stop.set()
    caller.join()
    assert errors == []
    assert {old, new} <= versions
    (status,) = [s for s in server.status().model_version_status if s.version == new]
    assert status.state == status.AVAILABLE
