"""The TF Serving deploy files: each parses with TF Serving's own messages and meets the rules
tensorflow_model_server 2.16.1 checks at start and on every batched request."""
import pytest
import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from ratings import paths
from serving import contract, deploy
from serving.model_server.tf_serving_config import BatchingParameters, MonitoringConfig


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serving")
    paths.write_files(str(folder), deploy.all_files(["movierec", "movierec-neumf"]))
    return {path.name: path.read_text() for path in folder.iterdir()}


def parsed(files, name, message):
    """The file parsed as tensorflow_model_server parses it: a text proto, unknown fields refused."""
    return text_format.Parse(files[name], message())


def test_models_config_parses_with_tf_serving_protos(files):
    config = parsed(files, deploy.MODELS_CONFIG, model_server_config_pb2.ModelServerConfig)
    assert [(m.name, m.base_path, m.model_platform) for m in config.model_config_list.config] == [
        ("movierec", "/models/movierec", "tensorflow"), ("movierec-neumf", "/models/movierec-neumf", "tensorflow")]


def test_monitoring_config_parses(files):
    config = parsed(files, deploy.MONITORING_FILE, MonitoringConfig)
    assert config.prometheus_config.enable and config.prometheus_config.path == deploy.METRICS_PATH


def test_a_misspelt_field_is_refused_as_the_server_refuses_it():
    with pytest.raises(text_format.ParseError, match="max_batch_sizes"):
        text_format.Parse("max_batch_sizes { value: 8 }", BatchingParameters())
    with pytest.raises(text_format.ParseError):
        text_format.Parse("max_batch_size: 8", BatchingParameters())  # a wrapper, not a bare int


def test_batching_parameters_meet_tf_serving_rules(files):
    params = parsed(files, deploy.BATCHING_FILE, BatchingParameters)
    sizes = list(params.allowed_batch_sizes)
    # servables/tensorflow/bundle_factory_util.cc `WrapSessionForBatching`: "Last entry in
    # allowed_batch_sizes must match max_batch_size".
    assert sizes[-1] == params.max_batch_size.value
    # batching/batching_session.cc `CreateBasicBatchingSession`: "allowed_batch_sizes entries must
    # be monotonically increasing" (and batching_util.cc `RoundToLowestAllowedBatchSize` takes the
    # first entry >= the batch).
    assert all(a < b for a, b in zip(sizes, sizes[1:])) and sizes[0] >= 1
    # session_bundle_config.proto: num_batch_threads "Must be >= 1".
    assert params.num_batch_threads.value >= 1 and params.batch_timeout_micros.value >= 0
    # Merging recommend calls of different exclusion widths needs padding
    # (batching_session.cc `MergeInputTensors`: FAILED_PRECONDITION without it).
    assert params.pad_variable_length_inputs
    # No large-batch splitting (its parts' outputs are concatenated: batching_session.cc
    # `SplitInputTask`), so one request carries at most max_batch_size rows, as the client sends.
    assert params.HasField("enable_large_batch_splitting") and not params.enable_large_batch_splitting.value
    assert params.max_batch_size.value == contract.MAX_BATCH_SIZE


def test_server_flags_name_the_files_and_turn_batching_warmup_and_polling_on(files):
    compose = yaml.safe_load(files["docker-compose.yaml"])
    args = compose["services"]["tf-serving"]["command"]
    assert args == deploy.server_args()
    flags = dict(arg[2:].split("=", 1) for arg in args)
    assert flags["model_config_file"] == f"/models/{deploy.MODELS_CONFIG}"
    assert flags["batching_parameters_file"] == f"/models/{deploy.BATCHING_FILE}"
    assert flags["monitoring_config_file"] == f"/models/{deploy.MONITORING_FILE}"
    assert flags["enable_batching"] == flags["enable_model_warmup"] == "true"
    # model_servers/server.cc `Server::BuildAndStart` re-reads models.config only when this is > 0.
    assert int(flags["model_config_file_poll_wait_seconds"]) > 0


def test_kubernetes_probes_on_the_rest_api_and_shared_storage(files):
    """Readiness on the metadata path (200 only with a version that can serve; what each answers
    on a live server: tests/e2e/test_tf_serving_rules.py test_probes_reflect_whether_a_version_can_serve),
    liveness on the Prometheus page monitoring.config enables."""
    deployment, service, claim = yaml.safe_load_all(files["kubernetes.yaml"])
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    for probe in ("startupProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/v1/models/movierec/metadata", "port": deploy.REST_PORT}
    assert container["livenessProbe"]["httpGet"] == {"path": deploy.METRICS_PATH, "port": deploy.REST_PORT}
    assert deploy.METRICS_PATH in files[deploy.MONITORING_FILE] and "enable: true" in files[deploy.MONITORING_FILE]
    assert deployment["spec"]["replicas"] > 1 and claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert "ReadWriteMany" in files["kubernetes.yaml"].splitlines()[2]  # the storage note, on top


@pytest.mark.parametrize("batching", [True, False])
def test_a_local_server_runs_the_compose_files_command_on_the_pushed_folder(tmp_path, batching):
    """local_flags (what tests and benchmarks start `movierec serve` with) against the pushed
    docker-compose.yaml, read here as docker reads it: its command with the /models mount mapped to
    the serving dir, ports and the version poll left to the caller, and batching dropped on request."""
    serving_dir, work_dir = tmp_path / "serving", tmp_path / "work"
    serving_dir.mkdir(), work_dir.mkdir()
    paths.write_files(str(serving_dir), deploy.all_files(["movierec", "movierec-neumf"]))
    (service,) = yaml.safe_load((serving_dir / "docker-compose.yaml").read_text())["services"].values()
    mount = service["volumes"][0].split(":")[1]
    expected = [arg.replace(f"={mount}/", f"={serving_dir}/") for arg in service["command"]
                if arg.split("=")[0] not in ("--port", "--rest_api_port", "--file_system_poll_wait_seconds")
                and (batching or "batching" not in arg)]
    expected = [f"--model_config_file={work_dir}/{deploy.MODELS_CONFIG}" if arg.startswith("--model_config_file=")
                else arg for arg in expected]
    assert deploy.local_flags(str(serving_dir), str(work_dir), batching) == expected
    config = text_format.Parse((work_dir / deploy.MODELS_CONFIG).read_text(), model_server_config_pb2.ModelServerConfig())
    assert [m.base_path for m in config.model_config_list.config] == [
        f"{serving_dir}/movierec", f"{serving_dir}/movierec-neumf"]
