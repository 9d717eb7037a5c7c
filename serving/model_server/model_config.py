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

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving.model_server import tf_serving_config

INT64_MAX = 2 ** 63 - 1


class ConfigError(ValueError):
    """A configuration file tensorflow_model_server would refuse: `status` is what it answers
    ("CODE: message", printed after "Failed to start server. Error: "), `log_line` what it logs
    first (protobuf's parse error, which names the line and column), if anything."""

    def __init__(self, status: str, log_line: str = ""):
        super().__init__(f"{log_line} ({status})" if log_line else status)
        self.status, self.log_line = status, log_line


def _parse(path: str, message):
    """util/proto_util.h ParseProtoTextFile: NOT_FOUND for a file that cannot be read,
    INVALID_ARGUMENT "Invalid protobuf file: '<path>'" for one that does not parse (protobuf's
    TextFormat logs the line, column and reason: "Error parsing text-format <type>: ...")."""
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"NOT_FOUND: {path}; {e.strerror}") from e
    try:
        return text_format.Parse(text, message)
    except (text_format.ParseError, UnicodeDecodeError) as e:
        where = f"{e.GetLine()}:{e.GetColumn()}" if isinstance(e, text_format.ParseError) and e.GetLine() else ""
        reason = str(e).split(" : ", 1)[-1]
        raise ConfigError(f"INVALID_ARGUMENT: Invalid protobuf file: '{path}'",
                          f"{path}:{where}] Error parsing text-format {message.DESCRIPTOR.full_name}: "
                          f"{where}: {reason}") from e


def _relative(path: str) -> bool:
    """server_core.cc UriIsRelativePath: no scheme, no host, not an absolute path."""
    return "://" not in path and not path.startswith("/")


def read_model_server_config(path: str) -> model_server_config_pb2.ModelServerConfig:
    """The file's ModelServerConfig, refused as ServerCore refuses it (server_core.cc
    ValidateModelConfigList, GetPlatform, the platform routes). A file without any config
    (CONFIG_NOT_SET) is accepted and serves nothing ("Taking no action for empty config")."""
    config = _parse(path, model_server_config_pb2.ModelServerConfig())
    if config.HasField("custom_model_config"):
        raise ConfigError("UNIMPLEMENTED: custom_model_config is not supported by movierec serve")
    names = set()
    for model in config.model_config_list.config:
        if model.name in names:
            raise ConfigError(f"INVALID_ARGUMENT: Illegal to list model {model.name} multiple times in config list")
        names.add(model.name)
    for model in config.model_config_list.config:
        if _relative(model.base_path):
            raise ConfigError(f"INVALID_ARGUMENT: Expected model {model.name} to have an absolute path or URI; "
                              f"got base_path()={model.base_path}")
    for model in config.model_config_list.config:
        if model.model_type and model.model_platform:
            raise ConfigError("INVALID_ARGUMENT: Illegal setting both ModelServerConfig::model_type (deprecated) and "
                              f"ModelServerConfig::model_platform, model name is {model.name}")
        platform = "tensorflow" if model.model_type == model_server_config_pb2.TENSORFLOW else model.model_platform
        if model.model_type not in (0, model_server_config_pb2.TENSORFLOW):
            raise ConfigError(f"INVALID_ARGUMENT: ModelServerConfig::model_type choice {model.model_type} not "
                              "supported.")
        if not platform:
            raise ConfigError("INVALID_ARGUMENT: Illegal setting neither ModelServerConfig::model_type (deprecated) "
                              f"nor ModelServerConfig::model_platform, model name is {model.name}")
        if platform != "tensorflow":
            raise ConfigError(f"INVALID_ARGUMENT: Model {model.name} requests unsupported platform {platform}")
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


def read_ssl_config(path: Optional[str]):
    """--ssl_config_file's SSLConfig (None without the flag)."""
    return _parse(path, tf_serving_config.SSLConfig()) if path else None


def read_session_config(path: Optional[str]):
    """--tensorflow_session_config_file's ConfigProto (None without the flag)."""
    from tensorflow.core.protobuf import config_pb2
    return _parse(path, config_pb2.ConfigProto()) if path else None


_VERSION = re.compile(r"[ \t\n\v\f\r]*(-?[0-9]+)[ \t\n\v\f\r]*")


def parse_version(folder: str) -> Optional[int]:
    """The version a base-path child stands for, as TF's strings::safe_strto64 reads it
    (file_system_storage_path_source.cc ParseVersionNumber): surrounding whitespace and leading
    zeros allowed ("007" is version 7), a minus sign too; anything else is not a version."""
    match = _VERSION.fullmatch(folder)
    if not match:
        return None
    value = int(match.group(1))
    return value if -INT64_MAX - 1 <= value <= INT64_MAX else None


def _children(base_path: str) -> List[str]:
    """The base path's children in byte order (GetChildren into a std::set), files included: TF
    Serving does not look at what a child is, so a file named "5" is version 5 (and fails to load)."""
    return sorted(os.listdir(base_path), key=lambda name: name.encode("utf-8", "surrogateescape"))


def version_folders(base_path: str) -> Dict[int, str]:
    """{version: path} as IndexChildrenByVersion builds it. Two children for one version ("007" and
    "7"): the later one in byte order wins ("7"), as TF Serving logs: "Duplicate version directories
    detected. Version 7 will be loaded from 7, 007 will be ignored." A base path that is missing or
    cannot be listed raises OSError: TF Serving's poll fails then (PollFileSystemForServable), rather
    than finding no versions."""
    versions: Dict[int, str] = {}
    for child in _children(base_path):
        version = parse_version(child)
        if version is None:
            continue
        if version in versions:
            logging.warning("Duplicate version directories detected. Version %d will be loaded from %s, "
                            "%s will be ignored.", version, child, os.path.basename(versions[version]))
        versions[version] = os.path.join(base_path, child)
    return versions


def aspired_versions(model: model_server_config_pb2.ModelConfig) -> Dict[int, str]:
    """The versions the model's version policy asks for (file_system_storage_path_source.cc):
    latest N (default 1) and specific from IndexChildrenByVersion; `all` from every child in
    order, where the first child of a duplicated version wins (the manager refuses the second:
    "This servable is already being managed")."""
    policy = model.model_version_policy
    kind = policy.WhichOneof("policy_choice")
    if kind == "all":
        found: Dict[int, str] = {}
        for child in _children(model.base_path):
            version = parse_version(child)
            if version is not None and version not in found:
                found[version] = os.path.join(model.base_path, child)
        return found
    found = version_folders(model.base_path)
    if kind == "specific":
        missing = set(policy.specific.versions) - set(found)
        for version in sorted(missing):
            logging.warning("Version %d of servable %s, which was requested to be served as a 'specific' version "
                            "in the servable's version policy, was not found in the file system", version, model.name)
        return {v: found[v] for v in sorted(set(policy.specific.versions)) if v in found}
    count = policy.latest.num_versions if kind == "latest" and policy.latest.num_versions else 1
    return {v: found[v] for v in sorted(found)[-count:]}
