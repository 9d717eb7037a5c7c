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

from serving.model_server import batching
from serving.client import predict_request
from serving.model_server.model_config import aspired_versions, read_model_server_config
from serving.model_server import tf_serving_config
from serving.model_server.server import Loader
from serving.model_server.status import ServingError
from tests import tfs_conformance, tfs_conformance_models, tfs_models
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
    tfs_conformance_models.spin(str(root / "spin" / "1"))
    (root / "models.config").write_text(models_config("good", "spin", root=root))
    (root / "batching_parameters.txt").write_text(BATCHING_PARAMETERS)
    (root / "monitoring.config").write_text(MONITORING)
    return root


@contextlib.contextmanager
def _serving(root):
    server = Served(root, f"--model_config_file={root}/models.config", "--model_config_file_poll_wait_seconds=1",
                    "--enable_batching", f"--batching_parameters_file={root}/batching_parameters.txt",
                    f"--monitoring_config_file={root}/monitoring.config", "--rest_api_timeout_in_ms=2000",
                    "--enable_grpc_healthcheck_service", "--no_such_flag=1")
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
    (root / "models.config.tmp").write_text(models_config("good", "spin", "other", root=root))
    (root / "models.config.tmp").rename(root / "models.config")
    served.wait(lambda: served.status("other") == {3: ("AVAILABLE", 0, "")}, timeout_s=60)
    assert call(served, "recommend", model="other", **RECOMMEND).model_spec.name == "other"


def test_config_file_that_does_not_parse_is_refused_with_its_line(tmp_path):
    bad = tmp_path / "bad.config"
    bad.write_text('model_config_list { config { name: "x" base_pth: "/y" } }\n')
    result = subprocess.run([*MOVIEREC, "serve", f"--model_config_file={bad}", "--port=1"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 255
    # main.cc prints the status on stdout; protobuf's TextFormat logs the line and the reason
    # (util/proto_util.h ParseProtoTextFile; tensorflow_model_server_test.py testBadModelConfig).
    assert f"Failed to start server. Error: INVALID_ARGUMENT: Invalid protobuf file: '{bad}'" in result.stdout
    assert "Error parsing text-format tensorflow.serving.ModelServerConfig: 1:40: " in result.stderr
    assert f"{bad}:1:" in result.stderr and "base_pth" in result.stderr


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
    assert result.returncode == 255  # main.cc: the status on stdout (server_core.cc WaitUntilModelsAvailable's text)
    assert "Failed to start server. Error: UNKNOWN: 1 model(s) did not become available: {{{name: m version: 1} due " \
           'to error: FAILED_PRECONDITION: Serving signature key "no_such_signature" not found.}, }' in result.stdout


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
    status, body = served.rest("/v1/models/nope")  # pretty-printed as RapidJSON's PrettyWriter writes it
    assert (status, json.loads(body)) == (404, {"error": "Could not find any versions of model nope"})


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
    status, body = served.rest("/v1/models/good:predict", {"signature_name": "nope", "instances": [1]})
    assert (status, json.loads(body)) == (400, {"error": 'Serving signature name: "nope" not found in signature def'})
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


# --- command line (model_servers/main.cc, tensorflow/core/util/command_line_flags.cc) ------------

MAIN_CC_FLAGS = (  # model_servers/main.cc's flag list at 2.16.1, in its order
    "port grpc_socket_path rest_api_port rest_api_num_threads rest_api_timeout_in_ms rest_api_enable_cors_support "
    "enable_batching allow_version_labels_for_unavailable_models batching_parameters_file "
    "enable_per_model_batching_parameters model_config_file model_config_file_poll_wait_seconds model_name "
    "model_base_path num_load_threads num_unload_threads max_num_load_retries load_retry_interval_micros "
    "file_system_poll_wait_seconds flush_filesystem_caches tensorflow_session_parallelism "
    "tensorflow_session_config_file tensorflow_intra_op_parallelism tensorflow_inter_op_parallelism "
    "use_alts_credentials ssl_config_file platform_config_file per_process_gpu_memory_fraction saved_model_tags "
    "grpc_channel_arguments grpc_max_threads enable_model_warmup num_request_iterations_for_warmup version "
    "monitoring_config_file remove_unused_fields_from_bundle_metagraph prefer_tflite_model num_tflite_pools "
    "num_tflite_interpreters_per_pool enable_signature_method_name_check xla_cpu_compilation_enabled "
    "enable_profiler thread_pool_factory_config_file mixed_precision skip_initialize_tpu "
    "enable_grpc_healthcheck_service").split()


def serve(*args):
    return subprocess.run([*MOVIEREC, "serve", *args], capture_output=True, text=True, timeout=120)


def test_command_line_as_main_cc_parses_it():
    """--help: every flag of main.cc, in order, the usage on stdout and exit status 255 (Flags::Parse
    returns false for --help); --version: the two version lines, 0; a value that does not parse, or
    a boolean other than =true/=false: "Couldn't interpret value", the usage, 255."""
    result = serve("--help")
    assert result.returncode == 255 and result.stdout.startswith("usage: tensorflow_model_server\nFlags:\n")
    listed = [line.split("=")[0].strip().lstrip("-") for line in result.stdout.splitlines()[2:]]
    assert listed == MAIN_CC_FLAGS
    assert f"\t{'--rest_api_timeout_in_ms=30000':<33}\tint32\tTimeout for HTTP/REST API calls.\n" in result.stdout
    assert "--enable_profiler=true" in result.stdout and "[movierec serve: no effect, no profiler service]" in result.stdout
    result = serve("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("TensorFlow ModelServer: 2.16.1") and "\nTensorFlow Library: 2.16" in result.stdout
    result = serve("--port=abc", "--enable_batching=1", "--model_base_path=/nowhere")
    assert result.returncode == 255 and result.stdout.startswith("usage: tensorflow_model_server")
    assert "Couldn't interpret value abc for flag port." in result.stderr
    assert "Couldn't interpret value =1 for flag enable_batching." in result.stderr


def test_unknown_argument_is_reported_and_the_server_starts_anyway(served):
    """main.cc: `unknown argument: <it>` and the usage, then BuildAndStart as usual."""
    with open(served.log.name) as log:
        assert "unknown argument: --no_such_flag=1\nusage: tensorflow_model_server" in log.read()


# --- REST: timeout, routing, bodies (http_server.cc, http_rest_api_handler.cc, evhttp) -----------

def raw(served, method, path, body=b"", headers=None):
    """(status, headers, body) of one HTTP request exactly as written."""
    return tfs_conformance.send_http(served.rest_port, method, path, body, headers)


def test_rest_timeout_cancels_a_run_that_takes_longer(served):
    """--rest_api_timeout_in_ms becomes RunOptions.timeout_in_ms (http_rest_api_handler.cc): a run
    past it is cancelled, DEADLINE_EXCEEDED -> 504 with TensorFlow's "Timed out waiting for
    notification" (through the batching session, which runs the batch with its tasks' deadline).
    gRPC carries no REST timeout: the same run finishes."""
    started = time.monotonic()
    status, _, body = raw(served, "POST", "/v1/models/spin:predict",
                          json.dumps({"signature_name": "spin", "instances": [10 ** 9]}).encode())
    assert (status, json.loads(body)) == (504, {"error": "Timed out waiting for notification"})
    assert time.monotonic() - started < 20
    response = call(served, "spin", model="spin", n=np.array([10 ** 5], np.int64))
    assert response.outputs["total"].float_val  # typed field, as predict_util.cc writes outputs


def test_rest_routing_is_tf_servings(served):
    """The verb and sub-resource are matched case-insensitively but dispatched case-sensitively
    (http_rest_api_util.cc regexes with (?i), ProcessRequest comparing to "predict"/"metadata"); the
    query string is part of the path the regexes see (evhttp's uri_path); only GET and POST reach
    an API; OPTIONS is a CORS preflight; paths outside /v1/ get evhttp's 404 page."""
    status, _, body = raw(served, "POST", "/v1/models/good:PREDICT", b"{}")
    assert (status, json.loads(body)) == (400, {"error": "Malformed request: POST /v1/models/good:PREDICT"})
    status, _, body = raw(served, "GET", "/V1/MODELS/good/METADATA")  # a status request, not metadata
    assert status == 200 and "model_version_status" in json.loads(body)
    status, _, body = raw(served, "GET", "/v1/models/good/metadata?x=1")  # ?x=1 is no sub-resource
    assert (status, json.loads(body)) == (400, {"error": "Malformed request: GET /v1/models/good/metadata?x=1"})
    status, _, body = raw(served, "GET", "/v1/models/good?x=1")  # the model is "good?x=1"
    assert (status, json.loads(body)) == (404, {"error": "Could not find any versions of model good?x=1"})
    status, headers, body = raw(served, "PUT", "/v1/models/good", b"")
    assert (status, json.loads(body)) == (400, {"error": "Malformed request: PUT /v1/models/good"})
    status, headers, body = raw(served, "OPTIONS", "/v1/models/good")
    assert (status, body) == (400, b"")
    status, headers, body = raw(served, "OPTIONS", "/v1/models/good", headers={"Origin": "https://example.com"})
    assert (status, body) == (200, b"")
    status, headers, body = raw(served, "GET", "/healthz")
    assert (status, headers["Content-Type"], body) == (404, "text/html", b"<HTML><HEAD>\n<TITLE>404 Not Found</TITLE>\n"
                                                       b"</HEAD><BODY>\n<H1>Not Found</H1>\n</BODY></HTML>\n")
    status, _, body = raw(served, "GET", "/monitoring/prometheus/metrics?x=1")
    assert (status, body) == (400, b"Unexpected path: /monitoring/prometheus/metrics?x=1. "
                                   b"Should be /monitoring/prometheus/metrics")
    status, _, body = raw(served, "GET", "/v1/models/bad{path}")  # evhttp's strict URI parse
    assert status == 400 and body.startswith(b"<HTML><HEAD>\n<TITLE>400 Bad Request</TITLE>")


def test_rest_bodies_chunked_and_gzip(served):
    """evhttp reads chunked bodies, and evhttp_request.cc uncompresses gzip-encoded ones."""
    import gzip
    request = json.dumps({"signature_name": "predict_rating", "instances": [
        {"user_id": "u", "movie_id": "m1"}]}).encode()
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (request[:10], request[10:])) + b"0\r\n\r\n"
    for body, headers in ((chunked, {"Transfer-Encoding": "chunked"}),
                          (gzip.compress(request), {"Content-Encoding": "gzip"})):
        status, _, answer = raw(served, "POST", "/v1/models/good:predict", body, headers)
        assert (status, json.loads(answer)) == (200, {"predictions": [{"rating": 4.0, "id_bytes": {"b64": "bTE="}}]})


def test_grpc_takes_requests_up_to_2_gib(served):
    """model_servers/server.cc SetMaxMessageSize(kint32max): a 6 MB request is answered (gRPC's
    default would refuse anything over 4 MiB with RESOURCE_EXHAUSTED), and so is a 6 MB answer."""
    big = b"m" * (6 << 20)
    channel = grpc.insecure_channel(f"127.0.0.1:{served.port}", options=[("grpc.max_receive_message_length", -1),
                                                                         ("grpc.max_send_message_length", -1)])
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    response = stub.Predict(predict_request("good", "predict_rating", {
        "user_id": np.array([b"u"], object), "movie_id": np.array([big], object)}), timeout=60)
    channel.close()
    assert response.outputs["id_bytes"].string_val == [big] and response.outputs["rating"].float_val == [3.0]


def test_grpc_messages_over_1024_characters_are_cut(served):
    """grpc_status_util.cc ToGRPCStatus: kErrorMessageLimit 1024, then "...TRUNCATED"."""
    name = "x" * 2000
    code, message = code_of(lambda: call(served, "nope" + name, **RECOMMEND))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert message == f'Serving signature key "nope{name}'[:1024] + "...TRUNCATED"


def test_grpc_health_service(served):
    """--enable_grpc_healthcheck_service: the standard grpc.health.v1 service, SERVING for the
    server ("") and for ModelService and PredictionService (server.cc SetServingStatus)."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    stub = health_pb2_grpc.HealthStub(served.channel)
    for service in ("", "ModelService", "PredictionService"):
        assert stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status == \
            health_pb2.HealthCheckResponse.SERVING
    assert code_of(lambda: stub.Check(health_pb2.HealthCheckRequest(service="Other"), timeout=10))[0] == \
        grpc.StatusCode.NOT_FOUND


def test_version_folders_seven_and_double_o_seven(tmp_path):
    """"7" and "007" are both version 7. file_system_storage_path_source.cc IndexChildrenByVersion
    (latest and specific policies) keeps the later child in byte order, "7"; AspireAllVersions
    (policy all) aspires both and the manager keeps the first, "007" (the second is "already being
    managed"). A file is a child like a folder."""
    for child in ("7", "007", "not-a-version", "3"):
        (tmp_path / child).mkdir()
    (tmp_path / "9").write_text("a file")
    config = tmp_path / "models.config"
    chosen = {}
    for policy in ("latest { num_versions: 2 }", "specific { versions: 7 }", "all {}"):
        config.write_text(f'model_config_list {{ config {{ name: "m" base_path: "{tmp_path}" '
                          f'model_platform: "tensorflow" model_version_policy {{ {policy} }} }} }}')
        model = read_model_server_config(str(config)).model_config_list.config[0]
        chosen[policy.split()[0]] = {v: p.rsplit("/", 1)[1] for v, p in aspired_versions(model).items()}
    assert chosen == {"latest": {7: "7", 9: "9"}, "specific": {7: "7"}, "all": {3: "3", 7: "007", 9: "9"}}


HOSTILE = [  # (what, method, path, body, headers, HTTP status TF Serving's code gives)
    ("empty body", "POST", "/v1/models/good:predict", b"", {}, 400),
    ("not JSON", "POST", "/v1/models/good:predict", b"\xff\xfe\x00garbage", {}, 400),
    ("nesting a million deep", "POST", "/v1/models/good:predict", b"[" * 1_000_000, {}, 400),
    ("a deep tensor", "POST", "/v1/models/good:predict",
     b'{"signature_name": "total", "inputs": ' + b"[" * 5000 + b"1" + b"]" * 5000 + b"}", {}, 400),
    ("a deep object in an error", "POST", "/v1/models/good:predict",
     b'{"signature_name": 1, "x": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"}", {}, 400),
    ("a number too big", "POST", "/v1/models/good:predict", b'{"inputs": [1e999]}', {}, 400),
    ("an int32 too big", "POST", "/v1/models/good:predict",
     b'{"signature_name": "recommend", "inputs": {"user_id": ["u"], "k": [2147483648], "exclude_movie_ids": [[""]]}}',
     {}, 400),
    ("bad base64", "POST", "/v1/models/good:predict",
     b'{"signature_name": "predict_rating", "inputs": {"user_id": [{"b64": "!!"}], "movie_id": ["m"]}}', {}, 400),
    ("invalid UTF-8 and a lone surrogate", "POST", "/v1/models/good:predict",
     b'{"signature_name": "predict_rating", "inputs": {"user_id": ["\xff\\udc00"], "movie_id": [1]}}', {}, 400),
    ("a string where a float goes", "POST", "/v1/models/good:predict", b'{"signature_name": "total", "inputs": ["x"]}',
     {}, 400),
    ("ragged rows", "POST", "/v1/models/good:predict",
     b'{"signature_name": "recommend", "instances": [{"user_id": "u", "k": 1, "exclude_movie_ids": [""]},'
     b' {"user_id": "u", "k": 1, "exclude_movie_ids": [["", "m"]]}]}', {}, 400),
    ("too many rows for the batch", "POST", "/v1/models/good:predict",
     b'{"signature_name": "predict_rating", "inputs": {"user_id": ["u","u","u","u","u"], "movie_id": ["m","m","m","m","m"]}}',
     {}, 400),
    ("bad gzip", "POST", "/v1/models/good:predict", b"not gzip", {"Content-Encoding": "gzip"}, 400),
    ("bad chunk", "POST", "/v1/models/good:predict", b"zz\r\nxx\r\n0\r\n\r\n", {"Transfer-Encoding": "chunked"}, 400),
    ("a huge Content-Length", "POST", "/v1/models/good:predict", None, {"Content-Length": str(1 << 40)}, 413),
    ("an unknown method", "BREW", "/v1/models/good", b"", {}, 400),
    ("a long path", "GET", "/v1/models/" + "x" * 60000, None, {}, 404),
    ("an unknown model", "POST", "/v1/models/nope:predict", b'{"instances": [1]}', {}, 404),
    ("an unknown version", "GET", "/v1/models/good/versions/99999999999999999999", None, {}, 400),
]


def test_hostile_requests_get_4xx_and_the_server_keeps_answering(served):
    """No 5xx for a client's mistake: every request above, sent 8 at a time, 3 rounds, gets its 4xx
    (TF Serving's code for it: json_tensor.cc parse and type errors, batching limits, evhttp's own
    refusals), never a 5xx, and the server answers a good request as before and still runs."""
    def send(case):
        what, method, path, body, headers, expected = case
        status = raw(served, method, path, body, headers)[0]
        return what, expected, status

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(send, HOSTILE * 3))
    wrong = [(what, expected, status) for what, expected, status in results if status != expected]
    assert not wrong, wrong
    assert served.process.poll() is None
    status, _, body = raw(served, "POST", "/v1/models/good:predict", json.dumps({
        "signature_name": "predict_rating", "instances": [{"user_id": "u", "movie_id": "m1"}]}).encode())
    assert status == 200 and json.loads(body)["predictions"][0]["rating"] == 4.0


def test_probes_reflect_whether_a_version_can_serve(served, root):
    """The pushed kubernetes.yaml's probes (serving/deploy.py probe_paths) on a model
    whose only version fails to load: GET /v1/models/<m> still answers 200 (the version is known,
    END: http_rest_api_handler.cc ProcessModelStatusRequest), so it cannot be the readiness probe;
    the readiness path answers 404 until a version can serve, then 200; liveness stays 200."""
    from serving import deploy

    paths = deploy.probe_paths("broken")
    (root / "broken" / "1").mkdir(parents=True)
    (root / "broken" / "1" / "saved_model.pb").write_bytes(b"not a SavedModel")
    (root / "models.config.tmp").write_text(models_config("good", "spin", "other", "broken", root=root))
    (root / "models.config.tmp").rename(root / "models.config")
    served.wait(lambda: served.status("broken").get(1, ("",))[0] == "END", timeout_s=60)
    assert raw(served, "GET", "/v1/models/broken")[0] == 200
    assert raw(served, "GET", paths["ready"])[0] == 404
    assert raw(served, "GET", paths["alive"])[0] == 200
    tfs_models.save(str(root / "broken" / "2"))
    served.wait(lambda: served.status("broken").get(2, ("",))[0] == "AVAILABLE", timeout_s=60)
    assert raw(served, "GET", paths["ready"])[0] == 200
