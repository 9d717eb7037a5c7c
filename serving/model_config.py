"""The files tensorflow_model_server is configured with, read with TF Serving's own protos.

models.config (ModelServerConfig), batching_parameters.txt (BatchingParameters) and
monitoring.config (MonitoringConfig) are text protos; a file that does not parse is refused with
the file, line and field protobuf's parser names. Which version folders a model has, and which of
them a version policy asks for, follow sources/storage_path/file_system_storage_path_source.cc.
"""
import logging
import os
import re
from typing import Dict, List, Optional

import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving import tf_serving_config

INT64_MAX = 2 ** 63 - 1


class ConfigError(ValueError):
    """A configuration file (or flag combination) tensorflow_model_server would refuse."""


def _parse(path: str, message):
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from e
    try:
        return text_format.Parse(text, message)
    except text_format.ParseError as e:  # its message starts with "<line>:<column> : "
        raise ConfigError(f"{path}:{e} (not a {message.DESCRIPTOR.full_name} text proto)") from e


def read_model_server_config(path: str) -> model_server_config_pb2.ModelServerConfig:
    config = _parse(path, model_server_config_pb2.ModelServerConfig())
    if not config.HasField("model_config_list"):
        raise ConfigError(f"{path}: no model_config_list (custom_model_config is not supported)")
    for model in config.model_config_list.config:
        if not model.name or not model.base_path:
            raise ConfigError(f"{path}: every config needs a name and a base_path ({model})")
        if model.model_platform not in ("", "tensorflow"):
            raise ConfigError(f"{path}: model {model.name}: model_platform {model.model_platform!r} "
                              "is not served (only tensorflow)")
    return config


def single_model_config(name: str, base_path: str) -> model_server_config_pb2.ModelServerConfig:
    """--model_name/--model_base_path as model_servers/server.cc BuildSingleModelConfig builds it."""
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.config.add(name=name, base_path=base_path, model_platform="tensorflow")
    return config


def read_batching_parameters(path: Optional[str]) -> tf_serving_config.BatchingParameters:
    """The file's BatchingParameters; without a file, server.cc's default (only a thread pool name)."""
    if not path:
        parameters = tf_serving_config.BatchingParameters()
        parameters.thread_pool_name.value = "model_server_batch_threads"
        return parameters
    return _parse(path, tf_serving_config.BatchingParameters())


def read_monitoring_config(path: Optional[str]) -> tf_serving_config.MonitoringConfig:
    if not path:
        return tf_serving_config.MonitoringConfig()
    return _parse(path, tf_serving_config.MonitoringConfig())


_VERSION = re.compile(r"\s*(-?\d+)\s*")


def parse_version(folder: str) -> Optional[int]:
    """The version a folder name stands for, as TF's strings::safe_strto64 reads it: surrounding
    whitespace and leading zeros allowed ("007" is version 7), anything else is not a version."""
    match = _VERSION.fullmatch(folder)
    if not match:
        return None
    value = int(match.group(1))
    return value if -INT64_MAX - 1 <= value <= INT64_MAX else None


def version_folders(base_path: str) -> Dict[int, str]:
    """{version: path} for the version folders under a model's base path. Two folders for one version
    ("7" and "007"): the first listed wins, as in TF Serving. A base path that is missing or cannot be
    listed raises OSError: TF Serving's poll fails then, rather than finding no versions."""
    children = sorted(os.listdir(base_path))
    versions: Dict[int, str] = {}
    for child in children:
        version = parse_version(child)
        if version is None or not os.path.isdir(os.path.join(base_path, child)):
            continue
        if version in versions:
            logging.warning("Duplicate version directories detected. Version %d will be loaded from %s, "
                            "%s will be ignored", version, versions[version], child)
            continue
        versions[version] = os.path.join(base_path, child)
    return versions


def aspired_versions(model: model_server_config_pb2.ModelConfig) -> Dict[int, str]:
    """The versions the model's version policy asks for (latest N by default, all, or specific)."""
    found = version_folders(model.base_path)
    policy = model.model_version_policy
    kind = policy.WhichOneof("policy_choice")
    if kind == "all":
        return found
    if kind == "specific":
        missing = set(policy.specific.versions) - set(found)
        if missing:
            logging.warning("Version(s) %s of servable %s not found under %s", sorted(missing),
                            model.name, model.base_path)
        return {v: found[v] for v in policy.specific.versions if v in found}
    count = policy.latest.num_versions if kind == "latest" and policy.latest.num_versions else 1
    return {v: found[v] for v in sorted(found)[-count:]}


def deploy_flags(serving_dir: str, work_dir, batching: bool = True) -> List[str]:
    """The flags the pushed docker-compose.yaml gives tensorflow_model_server, for a local
    `movierec serve` (tests, benchmarks): its /models mount mapped to `serving_dir` (models.config
    rewritten into `work_dir`), ports and poll interval left to the caller, batching optional."""
    with open(f"{serving_dir}/docker-compose.yaml") as f:
        (service,) = yaml.safe_load(f)["services"].values()
    mount = service["volumes"][0].split(":")[1]
    config = os.path.join(work_dir, "models.config")
    with open(f"{serving_dir}/models.config") as f, open(config, "w") as out:
        out.write(f.read().replace(f'"{mount}/', f'"{serving_dir}/'))
    flags = []
    for flag in service["command"]:
        name = flag.split("=")[0]
        if name in ("--port", "--rest_api_port", "--file_system_poll_wait_seconds"):
            continue
        if name in ("--enable_batching", "--batching_parameters_file") and not batching:
            continue
        flags.append(flag.replace(f"={mount}/models.config", f"={config}").replace(f"={mount}/", f"={serving_dir}/"))
    return flags
