"""Deploy files for the real TF Serving, written beside the pushed versions.

`<serving_dir>/` then holds everything `tensorflow/serving` needs: the versions
(`<model>/<version>/`), `models.config`, batching and Prometheus monitoring settings, a
docker-compose file and a Kubernetes manifest that mount that directory at /models.
"""
import os
from typing import Dict, Sequence

import yaml
from google.protobuf import text_format
from tfx.dsl.io import fileio
from tensorflow_serving.config import model_server_config_pb2

# The TF Serving release that matches the TensorFlow the models are trained and exported with.
TF_SERVING_IMAGE = "tensorflow/serving:2.16.1"
MODELS_MOUNT = "/models"
GRPC_PORT, REST_PORT = 8500, 8501
POLL_SECONDS = 5

# BatchingParameters / MonitoringConfig text protos (their .proto files are not in the pip package).
BATCHING_PARAMETERS = """\
# Server-side batching of concurrent requests (tensorflow_serving BatchingParameters).
max_batch_size { value: 128 }
batch_timeout_micros { value: 2000 }
max_enqueued_batches { value: 100 }
num_batch_threads { value: 4 }
"""
MONITORING_CONFIG = """\
# Prometheus metrics at http://<host>:8501/monitoring/prometheus/metrics
prometheus_config {
  enable: true
  path: "/monitoring/prometheus/metrics"
}
"""


def models_config(model_names: Sequence[str]) -> str:
    config = model_server_config_pb2.ModelServerConfig()
    for name in model_names:
        model = config.model_config_list.config.add(
            name=name, base_path=f"{MODELS_MOUNT}/{name}", model_platform="tensorflow")
        model.model_version_policy.latest.num_versions = 1
    return text_format.MessageToString(config)


def server_args() -> list:
    return [f"--port={GRPC_PORT}", f"--rest_api_port={REST_PORT}",
            f"--model_config_file={MODELS_MOUNT}/models.config",
            f"--file_system_poll_wait_seconds={POLL_SECONDS}",
            "--enable_batching", f"--batching_parameters_file={MODELS_MOUNT}/batching_parameters.txt",
            f"--monitoring_config_file={MODELS_MOUNT}/monitoring.config"]


def docker_compose() -> Dict:
    return {"services": {"tf-serving": {
        "image": TF_SERVING_IMAGE,
        "command": server_args(),
        "ports": [f"{GRPC_PORT}:{GRPC_PORT}", f"{REST_PORT}:{REST_PORT}"],
        "volumes": [f"./:{MODELS_MOUNT}:ro"],
        "restart": "unless-stopped",
    }}}


def kubernetes(model_names: Sequence[str]) -> list:
    labels = {"app": "movierec-serving"}
    container = {
        "name": "tf-serving", "image": TF_SERVING_IMAGE, "args": server_args(),
        "ports": [{"name": "grpc", "containerPort": GRPC_PORT}, {"name": "http", "containerPort": REST_PORT}],
        "volumeMounts": [{"name": "models", "mountPath": MODELS_MOUNT, "readOnly": True}],
        "readinessProbe": {"httpGet": {"path": f"/v1/models/{model_names[0]}", "port": REST_PORT},
                           "periodSeconds": 5},
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "4Gi"}},
    }
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "movierec-serving"},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels, "annotations": {
                "prometheus.io/scrape": "true", "prometheus.io/port": str(REST_PORT),
                "prometheus.io/path": "/monitoring/prometheus/metrics"}},
            "spec": {"containers": [container], "volumes": [
                {"name": "models", "persistentVolumeClaim": {"claimName": "movierec-models"}}]}}},
    }
    service = {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "movierec-serving"},
        "spec": {"selector": labels, "ports": [
            {"name": "grpc", "port": GRPC_PORT, "targetPort": GRPC_PORT},
            {"name": "http", "port": REST_PORT, "targetPort": REST_PORT}]},
    }
    return [deployment, service]


def write_deploy_files(serving_dir: str, model_names: Sequence[str]) -> None:
    """(Re)writes the deploy files for `model_names` into `serving_dir`, each atomically."""
    files = {
        "models.config": models_config(model_names),
        "batching_parameters.txt": BATCHING_PARAMETERS,
        "monitoring.config": MONITORING_CONFIG,
        "docker-compose.yaml": yaml.safe_dump(docker_compose(), sort_keys=False),
        "kubernetes.yaml": yaml.safe_dump_all(kubernetes(model_names), sort_keys=False),
    }
    for name, text in files.items():
        path = os.path.join(serving_dir, name)
        with fileio.open(f"{path}.tmp", "w") as f:
            f.write(text)
        fileio.rename(f"{path}.tmp", path, overwrite=True)
