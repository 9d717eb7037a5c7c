"""The deploy files for the real TF Serving: written here, and read back here alone.

`<serving_dir>/` holds everything `tensorflow/serving` needs: the versions
(`<model>/<version>/`), `models.config`, batching and Prometheus monitoring settings, a
docker-compose file and a Kubernetes manifest that mount that directory at /models. The Pusher
writes them after each push (`all_files`); infra validation starts a model server with the same
files and flags (`config_files`, `server_args`) on the candidate before anything is pushed; tests
and benchmarks start `movierec serve` on a pushed directory as production would (`local_flags`).
Why one module: the flags come from `server_args`, never from parsing docker-compose.yaml back,
so what the compose file says and what a local server runs cannot drift apart; and the Pusher and
the InfraValidator share it without importing each other.

Only text is made here (no file system but a local `open` in `local_flags`): the components
write it through ratings.paths, which reaches buckets too, and serving/ stays free of TFX.

What TF Serving 2.16.1 requires of them, and where its source decides it:
- Batching is on, so every input is batch-major (serving/contract.py); requests of different
  clients are merged into one batch of at most MAX_BATCH_SIZE rows.
- `pad_variable_length_inputs: true`: without it, concurrent `recommend` calls whose
  exclude_movie_ids differ in width cannot be merged (batching/batching_session.cc
  `BatchingSession::MergeInputTensors`: FAILED_PRECONDITION "Tensors with name
  'exclude_movie_ids' from different tasks have different shapes and padding is turned off").
- Large-batch splitting off, max_batch_size = contract.MAX_BATCH_SIZE: a request of more rows is
  refused (INVALID_ARGUMENT); with splitting, the parts of one request would be answered in
  different batches whose ranked width K may differ, and joining them fails
  (batching_session.cc `SplitInputTask`: `tensor::Concat` of the parts).
- allowed_batch_sizes increase and end with max_batch_size
  (servables/tensorflow/bundle_factory_util.cc `WrapSessionForBatching`: "Last entry in
  allowed_batch_sizes must match max_batch_size"; increasing order is what
  batching/batching_util.cc `RoundToLowestAllowedBatchSize` assumes and session_bundle_config.proto
  requires). A merged batch is padded up to the next allowed size with copies of a real row
  (`MergeInputTensors`), whose outputs are dropped.
- `--model_config_file_poll_wait_seconds`: every push rewrites models.config (a new model name
  appears there); without the flag the server reads it only at start
  (model_servers/server.cc `Server::BuildAndStart` polls only when it is > 0).
"""
import os
from typing import Dict, List, Sequence

import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving import contract

# The TF Serving release that matches the TensorFlow the models are trained and exported with.
TF_SERVING_IMAGE = "tensorflow/serving:2.16.1"
MODELS_MOUNT = "/models"
GRPC_PORT, REST_PORT = 8500, 8501
POLL_SECONDS = 5  # new versions of a model (--file_system_poll_wait_seconds)
CONFIG_POLL_SECONDS = 30  # models.config, for new model names
MODELS_CONFIG, BATCHING_FILE, MONITORING_FILE = "models.config", "batching_parameters.txt", "monitoring.config"
METRICS_PATH = "/monitoring/prometheus/metrics"

# BatchingParameters (tensorflow_serving/servables/tensorflow/session_bundle_config.proto): the
# wrapper-typed fields are written `name { value: v }`, the others `name: v`. Written as text here
# (this module imports no model-server code); tests parse the file with TF Serving's own message
# (serving/model_server/tf_serving_config.py) and check it against the rules above.
BATCHING_WRAPPED = {
    "max_batch_size": contract.MAX_BATCH_SIZE,
    "batch_timeout_micros": 2000,
    "max_enqueued_batches": 100,
    "num_batch_threads": 4,
    "enable_large_batch_splitting": "false",
}
ALLOWED_BATCH_SIZES = [2 ** i for i in range(contract.MAX_BATCH_SIZE.bit_length())]


def batching_parameters() -> str:
    """batching_parameters.txt: a BatchingParameters text proto."""
    lines = ["# Server-side batching of concurrent requests (TF Serving BatchingParameters); see",
             "# serving/deploy.py for why each value is what it is."]
    lines += [f"{name} {{ value: {value} }}" for name, value in BATCHING_WRAPPED.items()]
    lines += [f"allowed_batch_sizes: {size}" for size in ALLOWED_BATCH_SIZES]
    lines.append("pad_variable_length_inputs: true")
    return "\n".join(lines) + "\n"


def monitoring_config() -> str:
    """monitoring.config: a MonitoringConfig text proto (Prometheus on the REST port)."""
    return (f"# Prometheus metrics at http://<host>:{REST_PORT}{METRICS_PATH}\n"
            f'prometheus_config {{\n  enable: true\n  path: "{METRICS_PATH}"\n}}\n')


def models_config(model_names: Sequence[str], mount: str = MODELS_MOUNT) -> str:
    config = model_server_config_pb2.ModelServerConfig()
    for name in model_names:
        model = config.model_config_list.config.add(
            name=name, base_path=f"{mount}/{name}", model_platform="tensorflow")
        model.model_version_policy.latest.num_versions = 1
    return text_format.MessageToString(config)


def server_args(config_dir: str = MODELS_MOUNT, grpc_port: int = GRPC_PORT, rest_port: int = REST_PORT) -> list:
    """tensorflow_model_server's flags for the deploy files in `config_dir` (batching and warmup on)."""
    return [f"--port={grpc_port}", f"--rest_api_port={rest_port}",
            f"--model_config_file={config_dir}/{MODELS_CONFIG}",
            f"--model_config_file_poll_wait_seconds={CONFIG_POLL_SECONDS}",
            f"--file_system_poll_wait_seconds={POLL_SECONDS}",
            "--enable_batching=true", f"--batching_parameters_file={config_dir}/{BATCHING_FILE}",
            "--enable_model_warmup=true",
            f"--monitoring_config_file={config_dir}/{MONITORING_FILE}"]


def docker_compose() -> Dict:
    return {"services": {"tf-serving": {
        "image": TF_SERVING_IMAGE,
        "command": server_args(),
        "ports": [f"{GRPC_PORT}:{GRPC_PORT}", f"{REST_PORT}:{REST_PORT}"],
        "volumes": [f"./:{MODELS_MOUNT}:ro"],
        "restart": "unless-stopped",
    }}}


STORAGE_NOTE = """\
# Storage: every replica mounts the same serving dir read-only at /models, and each push writes new
# versions and models.config into it. With more than one replica (or the pipeline on another node)
# the claim must be ReadWriteMany storage (NFS, Filestore, EFS, Azure Files) that the pipeline's
# Pusher writes too, or --serving-dir and base_path must be object storage (gs://, s3://) that TF
# Serving reads directly; a ReadWriteOnce disk attaches to one node only and the second pod never starts.
"""


def probe_paths(model_name: str) -> Dict[str, str]:
    """The HTTP paths the probes call, and why each answers as it does on tensorflow_model_server
    2.16.1 (model_servers/http_rest_api_handler.cc):

    - readiness (and startup): GET /v1/models/<name>/metadata. ProcessModelMetadataRequest gets a
      servable handle for the latest version (GetModelMetadataImpl -> ServerCore::GetServableHandle),
      so it is 200 only while a version is AVAILABLE, and 404 ("Servable not found for request:
      Latest(<name>)") while none can serve. GET /v1/models/<name> (ProcessModelStatusRequest ->
      GetModelStatusImpl) is not usable: it answers 200 whenever any version is known, also when
      every version is END (failed to load, or unloaded).
    - liveness: GET on the Prometheus path (monitoring.config enables it): the HTTP server answers
      it whatever the models' state, so a pod is restarted only when the server itself stops
      answering, not when no version can serve (restarting would not bring one back).
    """
    return {"ready": f"/v1/models/{model_name}/metadata", "alive": METRICS_PATH}


def kubernetes(model_names: Sequence[str]) -> list:
    """Deployment (2 replicas, probes on the REST API), Service, and the shared models claim.

    Probes (probe_paths): the startup probe allows 5 minutes for the first load and warmup (TF
    Serving opens its ports once the models are loaded); a pod whose first model has no version
    able to serve is taken out of the Service (readiness), one whose server stops answering is
    restarted after 30 s (liveness).
    """
    labels = {"app": "movierec-serving"}
    paths = probe_paths(model_names[0])
    probe = lambda path, period, failures: {
        "httpGet": {"path": path, "port": REST_PORT},
        "periodSeconds": period, "failureThreshold": failures, "timeoutSeconds": 2}
    container = {
        "name": "tf-serving", "image": TF_SERVING_IMAGE, "args": server_args(),
        "ports": [{"name": "grpc", "containerPort": GRPC_PORT}, {"name": "http", "containerPort": REST_PORT}],
        "volumeMounts": [{"name": "models", "mountPath": MODELS_MOUNT, "readOnly": True}],
        "startupProbe": probe(paths["ready"], 5, 60),
        "readinessProbe": probe(paths["ready"], 5, 2),
        "livenessProbe": probe(paths["alive"], 10, 3),
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "4Gi"}},
    }
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "movierec-serving"},
        "spec": {"replicas": 2, "selector": {"matchLabels": dict(labels)}, "template": {
            "metadata": {"labels": dict(labels), "annotations": {
                "prometheus.io/scrape": "true", "prometheus.io/port": str(REST_PORT),
                "prometheus.io/path": METRICS_PATH}},
            "spec": {"containers": [container], "volumes": [
                {"name": "models", "persistentVolumeClaim": {"claimName": "movierec-models"}}]}}},
    }
    service = {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "movierec-serving"},
        "spec": {"selector": labels, "ports": [
            {"name": "grpc", "port": GRPC_PORT, "targetPort": GRPC_PORT},
            {"name": "http", "port": REST_PORT, "targetPort": REST_PORT}]},
    }
    claim = {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "movierec-models"},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "10Gi"}}},
    }
    return [deployment, service, claim]


def config_files(model_names: Sequence[str], mount: str = MODELS_MOUNT) -> Dict[str, str]:
    """{file name: text}: the server's config files, with model base paths under `mount`."""
    return {MODELS_CONFIG: models_config(model_names, mount), BATCHING_FILE: batching_parameters(),
            MONITORING_FILE: monitoring_config()}


def all_files(model_names: Sequence[str]) -> Dict[str, str]:
    """{file name: text}: everything a push leaves beside the versions (config, compose, Kubernetes)."""
    return {
        **config_files(model_names),
        "docker-compose.yaml": yaml.safe_dump(docker_compose(), sort_keys=False),
        "kubernetes.yaml": STORAGE_NOTE + yaml.safe_dump_all(kubernetes(model_names), sort_keys=False),
    }


def local_flags(serving_dir: str, work_dir, batching: bool = True) -> List[str]:
    """The flags docker-compose.yaml gives tensorflow_model_server, for a local `movierec serve` on a
    pushed `serving_dir` (tests, benchmarks): the /models mount mapped to `serving_dir` (its
    models.config, with base paths rewritten, goes to `work_dir`), ports and the version poll left
    to the caller, batching optional."""
    config = model_server_config_pb2.ModelServerConfig()
    with open(os.path.join(serving_dir, MODELS_CONFIG)) as f:
        text_format.Parse(f.read(), config)
    for model in config.model_config_list.config:
        if model.base_path.startswith(MODELS_MOUNT + "/"):
            model.base_path = str(serving_dir) + model.base_path[len(MODELS_MOUNT):]
    models_file = os.path.join(work_dir, MODELS_CONFIG)
    with open(models_file, "w") as f:
        f.write(text_format.MessageToString(config))
    flags = []
    for flag in server_args(str(serving_dir)):
        name = flag.split("=")[0]
        if name in ("--port", "--rest_api_port", "--file_system_poll_wait_seconds"):
            continue
        if name in ("--enable_batching", "--batching_parameters_file") and not batching:
            continue
        flags.append(f"--model_config_file={models_file}" if name == "--model_config_file" else flag)
    return flags
