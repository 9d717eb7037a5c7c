"""TF Serving's BatchingParameters and MonitoringConfig messages, for writing and checking
`batching_parameters.txt` and `monitoring.config` as tensorflow_model_server parses them.

tensorflow-serving-api 2.16.1 ships `tensorflow_serving.config` (ModelServerConfig, so
`models.config` is written and checked with the real module) but neither
`tensorflow_serving/servables/tensorflow/session_bundle_config.proto` (BatchingParameters,
read by `--batching_parameters_file`) nor `tensorflow_serving/config/monitoring_config.proto`
(MonitoringConfig, `--monitoring_config_file`) nor `config/ssl_config.proto` (SSLConfig,
`--ssl_config_file`). The server parses those files as text protos, so
a misspelt or mistyped field stops it at start. This module declares those messages with the
same package, names, field numbers, types and wrapper types as TF Serving 2.16.1, in a pool of
their own, so text_format parses our files exactly as the server's parser would. Checked on
2026-11-29: the declared fields equal, name by name, those of the descriptors protoc 25.1 compiles
from TF Serving's own .proto files at tag 2.16.1 (number, type, label and message type). TF
Serving's sources are not vendored here; a TF Serving upgrade re-does that comparison.
"""
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

F = descriptor_pb2.FieldDescriptorProto
_INT64, _BOOL, _STRING, _MESSAGE = F.TYPE_INT64, F.TYPE_BOOL, F.TYPE_STRING, F.TYPE_MESSAGE
_OPTIONAL, _REPEATED = F.LABEL_OPTIONAL, F.LABEL_REPEATED
_WRAPPER = {"int64": ".google.protobuf.Int64Value", "bool": ".google.protobuf.BoolValue",
            "string": ".google.protobuf.StringValue"}

# (name, number, type, label, message type) as in TF Serving 2.16.1.
BATCHING_PARAMETERS_FIELDS = (
    ("max_batch_size", 1, _MESSAGE, _OPTIONAL, _WRAPPER["int64"]),
    ("batch_timeout_micros", 2, _MESSAGE, _OPTIONAL, _WRAPPER["int64"]),
    ("max_enqueued_batches", 3, _MESSAGE, _OPTIONAL, _WRAPPER["int64"]),
    ("num_batch_threads", 4, _MESSAGE, _OPTIONAL, _WRAPPER["int64"]),
    ("thread_pool_name", 5, _MESSAGE, _OPTIONAL, _WRAPPER["string"]),
    ("allowed_batch_sizes", 6, _INT64, _REPEATED, None),
    ("pad_variable_length_inputs", 7, _BOOL, _OPTIONAL, None),
    ("enable_large_batch_splitting", 8, _MESSAGE, _OPTIONAL, _WRAPPER["bool"]),
    ("max_execution_batch_size", 9, _MESSAGE, _OPTIONAL, _WRAPPER["int64"]),
)
PROMETHEUS_CONFIG_FIELDS = (
    ("enable", 1, _BOOL, _OPTIONAL, None),
    ("path", 2, _STRING, _OPTIONAL, None),
)
SSL_CONFIG_FIELDS = (
    ("server_key", 1, _STRING, _OPTIONAL, None),
    ("server_cert", 2, _STRING, _OPTIONAL, None),
    ("custom_ca", 3, _STRING, _OPTIONAL, None),
    ("client_verify", 4, _BOOL, _OPTIONAL, None),
)
MONITORING_CONFIG_FIELDS = (
    ("prometheus_config", 1, _MESSAGE, _OPTIONAL, ".tensorflow.serving.PrometheusConfig"),
)


def _message(name: str, fields) -> descriptor_pb2.DescriptorProto:
    message = descriptor_pb2.DescriptorProto(name=name)
    for field_name, number, field_type, label, type_name in fields:
        field = message.field.add(name=field_name, number=number, type=field_type, label=label)
        if type_name:
            field.type_name = type_name
    return message


def _file(name: str, messages, dependencies=()) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(name=name, package="tensorflow.serving", syntax="proto3",
                                               dependency=list(dependencies))
    proto.message_type.extend(messages)
    return proto


POOL = descriptor_pool.DescriptorPool()
POOL.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
POOL.Add(_file("tensorflow_serving/servables/tensorflow/session_bundle_config.proto",
               [_message("BatchingParameters", BATCHING_PARAMETERS_FIELDS)],
               ["google/protobuf/wrappers.proto"]))
POOL.Add(_file("tensorflow_serving/config/monitoring_config.proto",
               [_message("PrometheusConfig", PROMETHEUS_CONFIG_FIELDS),
                _message("MonitoringConfig", MONITORING_CONFIG_FIELDS)]))
POOL.Add(_file("tensorflow_serving/config/ssl_config.proto", [_message("SSLConfig", SSL_CONFIG_FIELDS)]))
BatchingParameters = message_factory.GetMessageClass(
    POOL.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))
MonitoringConfig = message_factory.GetMessageClass(
    POOL.FindMessageTypeByName("tensorflow.serving.MonitoringConfig"))
SSLConfig = message_factory.GetMessageClass(POOL.FindMessageTypeByName("tensorflow.serving.SSLConfig"))
