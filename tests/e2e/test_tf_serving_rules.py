"""Conformance of `movierec serve` with tensorflow_model_server 2.16.1, one test per rule in
docs/tf-serving-rules.md (which cites the TF Serving source of each). A real
tensorflow_model_server is not obtainable here; these tests run against `movierec serve` on
small hand-built SavedModels (tests/tfs_models.py), started once with batching on.
"""
import concurrent.futures
import contextlib
import json
import subprocess
import time
import urllib.request

import grpc
import numpy as np
import portpicker
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, get_model_status_pb2,
                                     model_service_pb2_grpc, prediction_service_pb2_grpc, regression_pb2)

from serving import batching
from serving.client import predict_request
from serving.model_config import aspired_versions, read_model_server_config
from serving import tf_serving_config
from serving.server import Loader
from serving.status import ServingError
from tests import tfs_models
from tests.cli import MOVIEREC

BATCHING_PARAMETERS = """max_batch_size { value: 4 }
batch_timeout_micros { value: 20000 }
max_enqueued_batches { value: 100 }
pad_variable_length_inputs: true
"""
MONITORING = 'prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }\n'


def models_config(*names, policy="latest { num_versions: 1 }", root):
    return "model_config_list {\n" + "".join(
        f'  config {{ name: "{n}" base_path: "{root}/{n}" model_platform: "tensorflow" '
        f"model_version_policy {{ {policy} }} }}\n" for n in names) + "}\n"


class Served:
    def __init__(self, root, *flags):
        self.port, self.rest_port = portpicker.pick_unused_port(), portpicker.pick_unused_port()
        self.log = open(root / f"server-{self.port}.log", "w")
        self.process = subprocess.Popen(
            [*MOVIEREC, "serve", f"--port={self.port}", f"--rest_api_port={self.rest_port}",
             "--file_system_poll_wait_seconds=1", "--max_num_load_retries=0", *flags],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.predictions = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def status(self, model="good"):
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = model
        return {s.version: (get_model_status_pb2.ModelVersionStatus.State.Name(s.state), s.status.error_code,
                            s.status.error_message) for s in self.models.GetModelStatus(request, timeout=5).model_version_status}

    def wait(self, condition, timeout_s=120):
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            assert self.process.poll() is None, "server exited"
            try:
                if condition():
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.3)
        raise TimeoutError("condition not reached")

    def rest(self, path, body=None):
        request = urllib.request.Request(f"http://127.0.0.1:{self.rest_port}{path}",
                                         data=None if body is None else json.dumps(body).encode())
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def stop(self):
        self.channel.close()
        self.process.terminate()
        self.process.wait(timeout=60)
        self.log.close()


def _model_root(root):
    tfs_models.save(str(root / "good" / "1"), tfs_models.GOOD_WARMUP)
    tfs_models.save(str(root / "good" / "007"), tfs_models.GOOD_WARMUP)  # version 7, leading zeros
    (root / "good" / "not-a-version").mkdir()
    tfs_models.save(str(root / "other" / "3"))
    (root / "models.config").write_text(models_config("good", root=root))
    (root / "batching_parameters.txt").write_text(BATCHING_PARAMETERS)
    (root / "monitoring.config").write_text(MONITORING)
    return root


@contextlib.contextmanager
def _serving(root):
    server = Served(root, f"--model_config_file={root}/models.config", "--model_config_file_poll_wait_seconds=1",
                    "--enable_batching", f"--batching_parameters_file={root}/batching_parameters.txt",
                    f"--monitoring_config_file={root}/monitoring.config")
    server.wait(lambda: server.status()[7][0] == "AVAILABLE")
    yield server
    server.stop()
    assert server.process.returncode == 0


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Model folders the module's server serves; no test changes them, so each test sees the same
    versions whatever ran before it."""
    return _model_root(tmp_path_factory.mktemp("tfs"))


@pytest.fixture(scope="module")
def served(root):
    with _serving(root) as server:
        yield server


@pytest.fixture
def own(tmp_path):
    """A server of its own on its own model folders, for a test that adds versions or models."""
    root = _model_root(tmp_path)
    with _serving(root) as server:
        yield server, root


def call(served, signature, model="good", **inputs):
    return served.predictions.Predict(predict_request(model, signature, inputs), timeout=10)


def code_of(function):
    with pytest.raises(grpc.RpcError) as raised:
        function()
    return raised.value.code(), raised.value.details()


RECOMMEND = dict(user_id=np.array([b"u"], object), k=np.array([2], np.int32),
                 exclude_movie_ids=np.array([[b"m1"]], object))


# --- versions, policies, config -------------------------------------------------------------------

def test_version_folders_and_latest_policy(served):
    assert served.status() == {7: ("AVAILABLE", 0, "")}  # "007" is version 7; "not-a-version" ignored
    assert call(served, "recommend", **RECOMMEND).model_spec.version.value == 7


def test_all_and_specific_policies(root, tmp_path):
    config = tmp_path / "policies.config"
    config.write_text(models_config("good", policy="all {}", root=root))
    assert sorted(aspired_versions(read_model_server_config(str(config)).model_config_list.config[0])) == [1, 7]
    config.write_text(models_config("good", policy="specific { versions: 1 }", root=root))
    assert sorted(aspired_versions(read_model_server_config(str(config)).model_config_list.config[0])) == [1]


def test_second_model_picked_up_by_config_poll(own):
    served, root = own
    assert code_of(lambda: served.status("other"))[0] == grpc.StatusCode.NOT_FOUND
    (root / "models.config.tmp").write_text(models_config("good", "other", root=root))
    (root / "models.config.tmp").rename(root / "models.config")
    served.wait(lambda: served.status("other") == {3: ("AVAILABLE", 0, "")}, timeout_s=60)
    assert call(served, "recommend", model="other", **RECOMMEND).model_spec.name == "other"


def test_config_file_that_does_not_parse_is_refused_with_its_line(tmp_path):
    bad = tmp_path / "bad.config"
    bad.write_text('model_config_list { config { name: "x" base_pth: "/y" } }\n')
    result = subprocess.run([*MOVIEREC, "serve", f"--model_config_file={bad}", "--port=1"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 255
    assert "Failed to start server" in result.stderr and f"{bad}:1:" in result.stderr and "base_pth" in result.stderr


# --- warmup as a load gate -----------------------------------------------------------------------

def test_version_whose_warmup_fails_never_serves(own):
    served, root = own
    tfs_models.save(str(root / "good" / "9"), tfs_models.SCALAR_WARMUP)  # rank-0 k: batching refuses it
    served.wait(lambda: served.status().get(9, ("",))[0] == "END", timeout_s=90)
    state, code, message = served.status()[9]
    assert code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert message == "Batching Run() input tensors must have at least one dimension"
    assert served.status()[7][0] == "AVAILABLE"
    assert call(served, "recommend", **RECOMMEND).model_spec.version.value == 7


def test_server_whose_only_version_fails_warmup_does_not_start(tmp_path):
    tfs_models.save(str(tmp_path / "m" / "1"), tfs_models.BROKEN_WARMUP)
    result = subprocess.run([*MOVIEREC, "serve", "--model_name=m", f"--model_base_path={tmp_path}/m",
                             f"--port={portpicker.pick_unused_port()}", "--max_num_load_retries=0"],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 255
    assert "Failed to start server. Error: 1 model(s) did not become available: {{name: m version: 1} due to " \
           'error: FAILED_PRECONDITION: Serving signature key "no_such_signature" not found.' in result.stderr


# --- batching session -----------------------------------------------------------------------------

def test_batching_refuses_rank_0_inputs(served):
    code, message = code_of(lambda: call(served, "scalar_k", user_id=np.array([b"u"], object), k=np.int32(2)))
    assert (code, message) == (grpc.StatusCode.INVALID_ARGUMENT,
                               "Batching Run() input tensors must have at least one dimension")


def test_batching_refuses_differing_batch_sizes(served):
    code, message = code_of(lambda: call(served, "predict_rating", user_id=np.array([b"u", b"v"], object),
                                         movie_id=np.array([b"m1"], object)))
    assert (code, message) == (grpc.StatusCode.INVALID_ARGUMENT,
                               "Batching Run() input tensors must have equal 0th-dimension size")


def test_batching_refuses_requests_above_max_batch_size(served):
    ids = np.array([b"m1"] * 5, object)
    code, message = code_of(lambda: call(served, "predict_rating", user_id=ids, movie_id=ids))
    assert (code, message) == (grpc.StatusCode.INVALID_ARGUMENT, "Task size 5 is larger than maximum input batch size 4")


def test_batching_refuses_outputs_without_batch_dimension(served):
    code, message = code_of(lambda: call(served, "total", x=np.array([1.0, 2.0], np.float32)))
    assert (code, message) == (grpc.StatusCode.FAILED_PRECONDITION, "Batched output tensor has 0 dimensions")


def test_concurrent_recommend_with_different_exclusion_widths(served):
    """Merged into shared batches (20 ms timeout) and padded with each request's first exclusion."""
    def recommend(width):
        excluded = [m for m in tfs_models.MOVIES[:width]]
        response = call(served, "recommend", user_id=np.array([b"u"], object), k=np.array([2], np.int32),
                        exclude_movie_ids=np.array([excluded], object))
        return width, tf.make_ndarray(response.outputs["movie_id"]).tolist()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(recommend, [1, 2, 3, 1, 2, 3, 1, 2] * 3))
    for width, movies in answers:
        assert movies == [tfs_models.MOVIES[width:width + 2]], (width, movies)


def _queue(parameters: str, version_dir) -> tuple:
    options = batching.options_from(tf_text(parameters))
    servable = Loader(options, warmup=False).load("good", 1, str(version_dir))
    return servable.queues["recommend"], servable


def tf_text(parameters: str):
    from google.protobuf import text_format
    return text_format.Parse(parameters, tf_serving_config.BatchingParameters())


def _together(queue, *requests):
    """Runs requests concurrently into one batch (the batch timeout is long, the batch fills)."""
    with concurrent.futures.ThreadPoolExecutor(len(requests)) as pool:
        futures = [pool.submit(queue.run, r) for r in requests]
        return [f.exception() or f.result() for f in futures]


def _recommend(*excluded):
    return {"user_id": np.array([b"u"], object), "k": np.array([2], np.int32),
            "exclude_movie_ids": np.array([list(excluded)], object).reshape(1, len(excluded))}


def test_without_padding_different_widths_fail_the_whole_batch(root):
    queue, servable = _queue("max_batch_size { value: 2 } batch_timeout_micros { value: 5000000 }",
                             root / "good" / "1")
    results = _together(queue, _recommend(b"m1"), _recommend(b"m1", b"m2"))
    Loader.unload(servable)
    assert all(isinstance(r, ServingError) and r.code == grpc.StatusCode.FAILED_PRECONDITION for r in results)
    assert "from different tasks have different shapes and padding is turned off" in results[0].message


def test_padding_cannot_pad_an_empty_tensor(root):
    queue, servable = _queue("max_batch_size { value: 2 } batch_timeout_micros { value: 5000000 } "
                             "pad_variable_length_inputs: true", root / "good" / "1")
    results = _together(queue, _recommend(), _recommend(b"m1"))
    padded = _together(queue, _recommend(b"m3"), _recommend(b"m1", b"m2"))
    Loader.unload(servable)
    assert all(isinstance(r, ServingError) and r.message == "Got empty tensor in batch of non-empty tensors."
               for r in results)
    assert [p["movie_id"].tolist() for p in padded] == [[[b"m1", b"m2"]], [[b"m3", b"m4"]]]


def test_large_batch_splitting_and_allowed_batch_sizes(root):
    queue, servable = _queue("max_batch_size { value: 8 } enable_large_batch_splitting { value: true } "
                             "max_execution_batch_size { value: 3 } allowed_batch_sizes: [2, 8]",
                             root / "good" / "1")
    six = {"user_id": np.array([b"u"] * 6, object), "k": np.array([1, 2, 1, 2, 1, 2], np.int32),
           "exclude_movie_ids": np.array([[m] for m in tfs_models.MOVIES] + [[b"m1"]], object)}
    outputs = queue.run(six)
    Loader.unload(servable)
    assert outputs["movie_id"].shape == (6, 2) and outputs["movie_id"][0].tolist() == [b"m2", b"m3"]
    with pytest.raises(ServingError, match="Last entry in allowed_batch_sizes must match max_batch_size; "
                                           "last entry was 2; expected 4"):
        batching.options_from(tf_text("max_batch_size { value: 4 } allowed_batch_sizes: [1, 2]"))


# --- status codes and messages --------------------------------------------------------------------

def test_predict_unknown_signature_is_failed_precondition(served):
    assert code_of(lambda: call(served, "nope", **RECOMMEND)) == (
        grpc.StatusCode.FAILED_PRECONDITION, 'Serving signature key "nope" not found.')


def test_predict_input_and_output_checks(served):
    code, message = code_of(lambda: call(served, "predict_rating", user_id=np.array([b"u"], object)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith(
        "input size does not match signature: 1!=2 len({user_id}) != len({movie_id,user_id}). Sent extra: {}. "
        "Missing but required: {movie_id}.")
    request = predict_request("good", "predict_rating", {"user_id": [b"u"], "movie_id": [b"m1"]})
    request.output_filter.extend(["rating", "rating"])
    assert code_of(lambda: served.predictions.Predict(request, timeout=10)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "duplicate output tensor alias: rating")


def test_unknown_model_and_version_are_not_found(served):
    assert code_of(lambda: call(served, "recommend", model="nope", **RECOMMEND)) == (
        grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(nope)")
    request = predict_request("good", "recommend", RECOMMEND)
    request.model_spec.version.value = 1
    assert code_of(lambda: served.predictions.Predict(request, timeout=10)) == (
        grpc.StatusCode.NOT_FOUND, "Servable not found for request: Specific(good, 1)")
    request.model_spec.ClearField("version")
    request.model_spec.version_label = "canary"
    assert code_of(lambda: served.predictions.Predict(request, timeout=10)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "Unrecognized servable version label: canary")
    assert code_of(lambda: served.status("nope")) == (
        grpc.StatusCode.NOT_FOUND, "Could not find any versions of model nope")


def test_metadata_needs_a_supported_field(served):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "good"
    assert code_of(lambda: served.predictions.GetModelMetadata(request, timeout=10)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "GetModelMetadataRequest must specify at least one metadata_field")
    request.metadata_field.append("signature_def")
    signatures = get_model_metadata_pb2.SignatureDefMap()
    served.predictions.GetModelMetadata(request, timeout=10).metadata["signature_def"].Unpack(signatures)
    assert {"recommend", "regress", "classify", "serving_default"} <= set(signatures.signature_def)


def _example(movie):
    return tf.train.Example(features=tf.train.Features(feature={"movie_id": tf.train.Feature(
        bytes_list=tf.train.BytesList(value=[movie]))}))


def test_regress_and_classify(served):
    request = regression_pb2.RegressionRequest()
    request.model_spec.name, request.model_spec.signature_name = "good", "regress"
    request.input.example_list.examples.extend([_example(b"m1"), _example(b"zz")])
    assert [r.value for r in served.predictions.Regress(request, timeout=10).result.regressions] == [4.0, 3.0]
    request.model_spec.signature_name = "recommend"  # three inputs: not a regression signature
    assert code_of(lambda: served.predictions.Regress(request, timeout=10)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "Expected one input Tensor.")
    request.model_spec.signature_name = "nope"
    assert code_of(lambda: served.predictions.Regress(request, timeout=10)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "No signature was found with the name: nope")
    classification = classification_pb2.ClassificationRequest()
    classification.model_spec.name, classification.model_spec.signature_name = "good", "classify"
    classification.input.example_list.examples.append(_example(b"m1"))
    (row,) = served.predictions.Classify(classification, timeout=10).result.classifications
    assert [(c.label, round(c.score, 3)) for c in row.classes] == [("liked", 0.8), ("not liked", 0.2)]
    classification.input.example_list.Clear()
    assert code_of(lambda: served.predictions.Classify(classification, timeout=10)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "Input is empty.")


# --- REST API -------------------------------------------------------------------------------------

def test_rest_status_and_metadata(served):
    status, body = served.rest("/v1/models/good/versions/7")
    assert status == 200 and json.loads(body) == {"model_version_status": [
        {"version": "7", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    status, body = served.rest("/v1/models/good/metadata")
    metadata = json.loads(body)
    assert status == 200 and metadata["model_spec"]["version"] == "7"
    assert metadata["metadata"]["signature_def"]["signature_def"]["recommend"]["method_name"] == \
        "tensorflow/serving/predict"
    assert served.rest("/v1/models/nope") == (404, json.dumps({"error": "Could not find any versions of model nope"}))


def test_rest_predict_row_and_columnar(served):
    status, body = served.rest("/v1/models/good:predict", {"signature_name": "recommend", "instances": [
        {"user_id": "u", "k": 2, "exclude_movie_ids": ["m1"]}, {"user_id": "v", "k": 2, "exclude_movie_ids": ["m3"]}]})
    assert status == 200, body
    assert json.loads(body) == {"predictions": [
        {"movie_id": ["m2", "m3"], "score": [4.0, 3.0], "user_id": "u"},
        {"movie_id": ["m1", "m2"], "score": [5.0, 4.0], "user_id": "v"}]}
    status, body = served.rest("/v1/models/good/versions/7:predict", {"inputs": {
        "user_id": [{"b64": "dQ=="}], "movie_id": ["m1"]}})  # "u" base64-encoded
    assert status == 200 and json.loads(body) == {"outputs": {"id_bytes": [{"b64": "bTE="}], "rating": [4.0]}}


def test_rest_errors(served):
    assert served.rest("/v1/models/good:predict", {"signature_name": "nope", "instances": [1]}) == (
        400, json.dumps({"error": 'Serving signature name: "nope" not found in signature def'}))
    status, body = served.rest("/v1/models/good:predict", {"signature_name": "scalar_k", "inputs": {
        "user_id": ["u"], "k": 2}})
    assert (status, json.loads(body)) == (400, {"error": "Batching Run() input tensors must have at least one dimension"})
    status, body = served.rest("/v1/models/good:predict", {"instances": [{"user_id": "u"}]})
    assert status == 400 and "keys must be equal to: movie_id,user_id" in json.loads(body)["error"]
    assert served.rest("/v1/models/good:explain", {})[0] == 400  # Malformed request
    assert served.rest("/v1/models/good:predict", {"signature_name": "recommend", "instances": [
        {"user_id": "u", "k": 2, "exclude_movie_ids": ["m1"]}]})[0] == 200
    status, body = served.rest("/v1/models/good:regress", {"signature_name": "regress", "examples": [
        {"movie_id": "m1"}, {"movie_id": "zz"}]})
    assert (status, json.loads(body)) == (200, {"results": [4.0, 3.0]})
    status, body = served.rest("/v1/models/good:classify", {"signature_name": "classify", "examples": []})
    assert status == 400 and "'examples' value is an empty array" in json.loads(body)["error"]


def test_prometheus_metrics_use_tf_serving_names(served):
    call(served, "recommend", **RECOMMEND)
    status, page = served.rest("/monitoring/prometheus/metrics")
    assert status == 200
    assert '\n:tensorflow:serving:request_count{model_name="good",status="OK"} ' in page
    assert ':tensorflow:serving:request_count{model_name="good",status="INVALID_ARGUMENT"} ' in page
    assert '# TYPE :tensorflow:serving:request_latency histogram' in page
    assert ':tensorflow:serving:request_latency_bucket{model_name="good",API="Predict",entrypoint="GRPC",le="10"}' in page
    assert ':tensorflow:serving:request_latency_count{model_name="good",API="predict",entrypoint="REST"}' in page
